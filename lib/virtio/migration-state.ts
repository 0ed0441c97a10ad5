/**
 * The saved state of a virtio device's transport, as it travels in a
 * migration stream: the common configuration, the ISR byte, the device
 * configuration, per queue its registers, ring positions and the chains
 * taken but not yet returned in the used ring, and what the device type
 * saves of its own. Encoded as JSON; decoding
 * checks that every field fits the destination device before anything is
 * applied.
 *
 * @packageDocumentation
 */
import { VIRTIO_MSI_NO_VECTOR, VirtioIsr } from './constants';

/** One queue's saved state. */
export interface VirtqueueState {
  readonly size: number;
  readonly msixVector: number;
  readonly enabled: boolean;
  readonly descAddress: number;
  readonly driverAddress: number;
  readonly deviceAddress: number;
  /** Chains taken from the available ring (its index as the device counts). */
  readonly lastAvail: number;
  /** used.idx as published to guest memory. */
  readonly usedIdx: number;
  /** used.idx at the last interrupt decision. */
  readonly signalledUsed: number;
  /** Heads taken and not yet in the used ring: served again where the device resumes. */
  readonly outstanding: readonly number[];
}

/** The transport's saved state. */
export interface VirtioTransportState {
  readonly status: number;
  readonly driverFeatures: bigint;
  readonly deviceFeatureSelect: number;
  readonly driverFeatureSelect: number;
  readonly configMsixVector: number;
  readonly generation: number;
  readonly queueSelect: number;
  readonly isr: number;
  readonly config: Buffer;
  /** Why NEEDS_RESET was set, if it is. */
  readonly needsReset: string | undefined;
  readonly queues: readonly VirtqueueState[];
  /** What the device type saved of its own, if anything. */
  readonly typeState: Buffer | undefined;
}

/** What the destination device is, for checking a state against it. */
export interface VirtioShape {
  readonly deviceFeatures: bigint;
  readonly queues: number;
  readonly maxQueueSize: number;
  readonly configSize: number;
  readonly msixVectors: number;
}

export function encodeVirtioState(state: VirtioTransportState): Buffer {
  return Buffer.from(JSON.stringify({
    ...state,
    driverFeatures: state.driverFeatures.toString(16),
    config: state.config.toString('base64'),
    needsReset: state.needsReset ?? null,
    typeState: state.typeState?.toString('base64') ?? null,
  }));
}

/**
 * Reads a state `encodeVirtioState` made and checks it against `shape`.
 *
 * @throws SyntaxError when it is not JSON
 * @throws RangeError naming the first field that does not fit
 */
export function decodeVirtioState(bytes: Buffer, shape: VirtioShape): VirtioTransportState {
  const raw = JSON.parse(bytes.toString()) as Record<string, unknown>;
  const field = new FieldReader(raw, 'virtio state');
  const features = field.string('driverFeatures');
  if (!/^[0-9a-f]{1,16}$/.test(features) || (BigInt(`0x${features}`) & ~shape.deviceFeatures) !== 0n) {
    throw new RangeError(`virtio state: driverFeatures ${features} are not features the device offers`);
  }
  const config = Buffer.from(field.string('config'), 'base64');
  if (config.length !== shape.configSize) {
    throw new RangeError(`virtio state: ${config.length} bytes of device configuration, the device has ${shape.configSize}`);
  }
  const needsReset = raw.needsReset === null ? undefined : field.string('needsReset');
  const typeState = raw.typeState === null ? undefined : Buffer.from(field.string('typeState'), 'base64');
  const queues = raw.queues;
  if (!Array.isArray(queues) || queues.length !== shape.queues) {
    throw new RangeError(`virtio state: the device has ${shape.queues} queues`);
  }
  return {
    status: field.int('status', 0xff),
    driverFeatures: BigInt(`0x${features}`),
    deviceFeatureSelect: field.int('deviceFeatureSelect', 0xffffffff),
    driverFeatureSelect: field.int('driverFeatureSelect', 0xffffffff),
    configMsixVector: field.vector('configMsixVector', shape.msixVectors),
    generation: field.int('generation', Number.MAX_SAFE_INTEGER),
    queueSelect: field.int('queueSelect', 0xffff),
    isr: field.int('isr', VirtioIsr.QUEUE | VirtioIsr.CONFIG),
    config,
    needsReset,
    queues: queues.map((q: unknown, i) => decodeQueue(q, i, shape)),
    typeState,
  };
}

function decodeQueue(raw: unknown, index: number, shape: VirtioShape): VirtqueueState {
  if (typeof raw !== 'object' || raw === null) {
    throw new RangeError(`virtio state: queue ${index} is not an object`);
  }
  const field = new FieldReader(raw as Record<string, unknown>, `virtio state, queue ${index}`);
  const size = field.int('size', shape.maxQueueSize);
  if (size === 0 || (size & (size - 1)) !== 0) {
    throw new RangeError(`virtio state, queue ${index}: size ${size} is not a power of two`);
  }
  const lastAvail = field.int('lastAvail', 0xffff);
  const usedIdx = field.int('usedIdx', 0xffff);
  const outstanding = (raw as Record<string, unknown>).outstanding;
  if (!Array.isArray(outstanding) || outstanding.some((h) => !Number.isInteger(h) || (h as number) < 0 || (h as number) >= size) ||
    new Set(outstanding).size !== outstanding.length) {
    throw new RangeError(`virtio state, queue ${index}: outstanding heads must be distinct descriptor indices below ${size}`);
  }
  // Every chain taken is either in the used ring or outstanding.
  if (((lastAvail - usedIdx) & 0xffff) !== outstanding.length) {
    throw new RangeError(`virtio state, queue ${index}: ${outstanding.length} outstanding chains, but ${lastAvail} taken and ${usedIdx} used`);
  }
  return {
    size,
    msixVector: field.vector('msixVector', shape.msixVectors),
    enabled: field.bool('enabled'),
    descAddress: field.int('descAddress', Number.MAX_SAFE_INTEGER),
    driverAddress: field.int('driverAddress', Number.MAX_SAFE_INTEGER),
    deviceAddress: field.int('deviceAddress', Number.MAX_SAFE_INTEGER),
    lastAvail,
    usedIdx,
    signalledUsed: field.int('signalledUsed', 0xffff),
    outstanding: outstanding as number[],
  };
}

/** Typed reads of a decoded object's fields, each failure naming the field. */
class FieldReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly where: string,
  ) {}

  int(name: string, max: number): number {
    const value = this.raw[name];
    if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max) {
      throw new RangeError(`${this.where}: ${name} must be an integer from 0 to ${max}, not ${String(value)}`);
    }
    return value as number;
  }

  vector(name: string, vectors: number): number {
    const value = this.int(name, VIRTIO_MSI_NO_VECTOR);
    if (value !== VIRTIO_MSI_NO_VECTOR && value >= vectors) {
      throw new RangeError(`${this.where}: ${name} ${value} is not one of the device's ${vectors} MSI-X vectors`);
    }
    return value;
  }

  bool(name: string): boolean {
    const value = this.raw[name];
    if (typeof value !== 'boolean') {
      throw new RangeError(`${this.where}: ${name} must be true or false`);
    }
    return value;
  }

  string(name: string): string {
    const value = this.raw[name];
    if (typeof value !== 'string') {
      throw new RangeError(`${this.where}: ${name} must be a string`);
    }
    return value;
  }
}
