/**
 * `VirtioDevice`: a virtio 1.x device on the modern PCI transport. The
 * layer lays out BAR0 (common configuration, ISR status, device
 * configuration, notifications) with the vendor-specific capabilities that
 * point at it, runs feature negotiation and the device status machine, and
 * routes interrupts to MSI-X vectors or to INTx with the ISR byte. A device
 * type declares its features, queues and configuration, and serves
 * requests.
 *
 * @packageDocumentation
 */
import { Msix } from '../constants';
import { PciDevice } from '../device';
import type { RegionHandler } from '../region';
import { CommonConfig, type CommonConfigOwner } from './common-config';
import {
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_MODERN_DEVICE_BASE,
  VIRTIO_PCI_VENDOR,
  VirtioCommonCfg,
  VirtioFeature,
  VirtioIsr,
  VirtioPciCap,
  VirtioStatus,
} from './constants';
import { decodeVirtioState, encodeVirtioState } from './migration-state';
import type { VirtqueueRequest } from './request';
import { Virtqueue, VirtqueueError, type VirtqueueHost } from './virtqueue';

/** Where the virtio structures are in BAR0. */
export const VirtioBarLayout = {
  BAR: 0,
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  /** Bytes between two queues' notification addresses. */
  NOTIFY_MULTIPLIER: 4,
  SIZE: 0x4000,
} as const;

const MAX_DEVICE_CONFIG = 0x1000;

/** What a virtio device type is. */
export interface VirtioDeviceOptions {
  /** The virtio device ID (see {@link VirtioDeviceType}); the PCI device ID is 0x1040 plus it. */
  readonly type: number;
  /** Device-type feature bits offered, as a mask (VERSION_1 and the ring features are added). */
  readonly features?: bigint;
  /** Number of virtqueues. */
  readonly queues: number;
  /** Largest size of each queue, a power of two (default 256). */
  readonly queueSize?: number;
  /** Bytes of device-specific configuration (0 to 4096, default 0: no such structure). */
  readonly configSize?: number;
  /** PCI class code (default 0xff0000). */
  readonly classCode?: number;
  /** Offer VIRTIO_F_RING_INDIRECT_DESC and VIRTIO_F_RING_EVENT_IDX (default true). */
  readonly ringFeatures?: boolean;
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

function bytesOf(data: Uint8Array | undefined): Buffer | undefined {
  return data === undefined ? undefined : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A vendor-specific capability pointing at a structure in BAR0 (spec 4.1.4). */
function virtioCapability(cfgType: number, offset: number, length: number, notifyMultiplier?: number): Uint8Array {
  // cfg_type, bar, id, 2 bytes padding, offset, length[, notify_off_multiplier]: after the 3 header bytes.
  const data = Buffer.alloc(notifyMultiplier === undefined ? 13 : 17);
  data[0] = cfgType;
  data[1] = VirtioBarLayout.BAR;
  data.writeUInt32LE(offset, 5);
  data.writeUInt32LE(length, 9);
  if (notifyMultiplier !== undefined) {
    data.writeUInt32LE(notifyMultiplier, 13);
  }
  return new Uint8Array(data);
}

/**
 * A virtio device. Subclass it: pass what the device type is to the
 * constructor, keep its configuration in {@link VirtioDevice.config}, and
 * serve requests in {@link VirtioDevice.onRequest}.
 *
 * @example
 * ```ts
 * class Rng extends VirtioDevice {
 *   constructor() { super({ type: VirtioDeviceType.ENTROPY, queues: 1 }); }
 *   override onRequest(queue: Virtqueue, request: VirtqueueRequest): void {
 *     const bytes = randomBytes(request.writableLength);
 *     void request.write(bytes).then(() => request.complete(bytes.length));
 *   }
 * }
 * ```
 */
export class VirtioDevice extends PciDevice {
  /** Features the device offers: the type's, VERSION_1 and the ring features. */
  readonly deviceFeatures: bigint;
  /** The device-specific configuration the driver reads (the device changes it, then calls {@link VirtioDevice.configChanged}). */
  readonly config: Buffer;
  /** The virtqueues. */
  readonly queues: readonly Virtqueue[];
  /** Why the device last set NEEDS_RESET (kept until the driver resets it). */
  needsResetReason: Error | undefined;
  readonly #common: CommonConfig;
  #isr = 0;
  readonly #msixVectors: number;

  constructor(options: VirtioDeviceOptions) {
    const queueCount = options.queues;
    if (!Number.isInteger(queueCount) || queueCount < 1 || queueCount > 1024) {
      throw new RangeError(`a virtio device has 1 to 1024 queues, not ${queueCount}`);
    }
    const queueSize = options.queueSize ?? 256;
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new RangeError(`a queue size is a power of two up to 32768, not ${queueSize}`);
    }
    const configSize = options.configSize ?? 0;
    if (!Number.isInteger(configSize) || configSize < 0 || configSize > MAX_DEVICE_CONFIG) {
      throw new RangeError(`device configuration is 0 to ${MAX_DEVICE_CONFIG} bytes, not ${configSize}`);
    }
    const msixVectors = queueCount + 1;
    const capabilities = [
      virtioCapability(VirtioPciCap.COMMON_CFG, VirtioBarLayout.COMMON, VirtioCommonCfg.SIZE),
      virtioCapability(VirtioPciCap.NOTIFY_CFG, VirtioBarLayout.NOTIFY, queueCount * VirtioBarLayout.NOTIFY_MULTIPLIER, VirtioBarLayout.NOTIFY_MULTIPLIER),
      virtioCapability(VirtioPciCap.ISR_CFG, VirtioBarLayout.ISR, 1),
      ...(configSize > 0 ? [virtioCapability(VirtioPciCap.DEVICE_CFG, VirtioBarLayout.DEVICE, configSize)] : []),
    ];
    const bar0: RegionHandler = {
      read: (offset, data) => this.#readBar(offset, data),
      write: (offset, data) => this.#writeBar(offset, data),
      reset: () => this.#reset(),
    };
    super({
      vendorId: VIRTIO_PCI_VENDOR,
      deviceId: VIRTIO_PCI_MODERN_DEVICE_BASE + options.type,
      subsystemVendorId: VIRTIO_PCI_VENDOR,
      subsystemId: 0x40 + options.type,
      revision: 1,
      classCode: options.classCode ?? 0xff0000,
      bars: [{ index: VirtioBarLayout.BAR, size: VirtioBarLayout.SIZE, handler: bar0 }],
      msix: { vectors: msixVectors, bar: 2 },
      intx: true,
      vendorCapabilities: capabilities,
      migration: { version: 1, save: () => this.#saveState(), load: (state) => this.#loadState(state) },
    });
    const ring = options.ringFeatures === false ? 0n : bit(VirtioFeature.RING_INDIRECT_DESC) | bit(VirtioFeature.RING_EVENT_IDX);
    this.deviceFeatures = (options.features ?? 0n) | bit(VirtioFeature.VERSION_1) | ring;
    this.config = Buffer.alloc(configSize);
    this.#msixVectors = msixVectors;
    const host: VirtqueueHost = {
      dma: this.dma,
      negotiated: (n) => this.negotiated(n),
      deliver: (queue, request) => this.#deliver(queue, request),
      interrupt: (queue) => this.#interrupt(queue.msixVector, VirtioIsr.QUEUE),
      fail: (queue, error) => this.needsReset(error instanceof VirtqueueError ? error : new VirtqueueError(queue.index, error.message)),
    };
    this.queues = Array.from({ length: queueCount }, (_, i) => new Virtqueue(host, i, queueSize));
    const owner: CommonConfigOwner = {
      deviceFeatures: this.deviceFeatures,
      queues: this.queues,
      msixVectors,
      resetDevice: () => this.#reset(),
      driverReady: () => this.#driverReady(),
      badQueue: (queue, problem) => this.needsReset(new VirtqueueError(queue.index, problem)),
    };
    this.#common = new CommonConfig(owner);
  }

  /** The device status byte (see {@link VirtioStatus}). */
  get status(): number {
    return this.#common.status;
  }

  /** The features the driver accepted (meaningful once FEATURES_OK is set). */
  get driverFeatures(): bigint {
    return this.#common.driverFeatures;
  }

  /** The config generation counter the driver reads. */
  get configGeneration(): number {
    return this.#common.generation & 0xff;
  }

  /** Whether the driver accepted feature bit `n` and FEATURES_OK stuck. */
  negotiated(n: number): boolean {
    return (this.#common.status & VirtioStatus.FEATURES_OK) !== 0 && (this.#common.driverFeatures & bit(n)) !== 0n;
  }

  /**
   * Tells the driver the device configuration changed: bumps the
   * generation counter and raises the configuration interrupt.
   */
  configChanged(): void {
    this.#common.generation++;
    if ((this.#common.status & VirtioStatus.DRIVER_OK) !== 0) {
      this.#interrupt(this.#common.configMsixVector, VirtioIsr.CONFIG);
    }
  }

  /**
   * Sets NEEDS_RESET: the device stops taking requests until the driver
   * resets it, and the driver gets a configuration interrupt.
   */
  needsReset(reason: Error): void {
    if ((this.#common.status & VirtioStatus.NEEDS_RESET) !== 0) {
      return;
    }
    this.needsResetReason = reason;
    this.#common.status |= VirtioStatus.NEEDS_RESET;
    this.onNeedsReset(reason);
    if ((this.#common.status & VirtioStatus.DRIVER_OK) !== 0) {
      this.#interrupt(this.#common.configMsixVector, VirtioIsr.CONFIG);
    }
  }

  /**
   * Hook: the driver made a chain available. Serve it and call
   * `request.complete(bytesWritten)`, now or later: requests may complete
   * in any order. A throw or a rejected promise marks the device NEEDS_RESET.
   */
  onRequest(queue: Virtqueue, request: VirtqueueRequest): void | Promise<void> {
    void queue;
    request.complete(0);
  }

  /** Hook: the driver read the device configuration at `offset`; `data` is filled from {@link VirtioDevice.config} after it returns. */
  onConfigRead(offset: number): void {
    void offset;
  }

  /** Hook: the driver wrote the device configuration (default: ignored, the fields being read-only). */
  onConfigWrite(offset: number, data: Buffer): void {
    void offset;
    void data;
  }

  /** Hook: the device was reset (the driver wrote 0 to the status, or the PCI function was reset). */
  onVirtioReset(): void {}

  /** Hook: the device set NEEDS_RESET, for this reason. */
  onNeedsReset(reason: Error): void {
    void reason;
  }

  /** Hook: the driver set DRIVER_OK; the queues are live. */
  onDriverOk(): void {}

  /**
   * Hook: the device type's own state for a migration (the layer saves the
   * transport and the device configuration itself). Default: nothing.
   */
  saveDeviceState(): Uint8Array | undefined {
    return undefined;
  }

  /** Hook: on the destination, what {@link VirtioDevice.saveDeviceState} returned (not called when it returned nothing). */
  loadDeviceState(state: Buffer): void {
    void state;
  }

  /**
   * The device stops for migration: requests in flight are dropped
   * ({@link VirtqueueRequest.dropped}); those not yet in the used ring are
   * served again where the device resumes. A subclass that overrides this
   * calls `super.onStop()`.
   */
  override onStop(): void {
    this.queues.forEach((queue) => queue.freeze());
  }

  /**
   * The device runs again (migrated, or on the source when the migration
   * was called off): the queues serve the requests outstanding at the stop,
   * then new ones. A subclass that overrides this calls `super.onResume()`.
   */
  override onResume(): void {
    if (this.#live()) {
      this.queues.filter((queue) => queue.enabled).forEach((queue) => queue.resume());
    }
  }

  #readBar(offset: number, data: Buffer): void {
    data.fill(0);
    if (offset < VirtioBarLayout.ISR) {
      this.#common.read(offset - VirtioBarLayout.COMMON, data);
    } else if (offset < VirtioBarLayout.DEVICE) {
      if (offset === VirtioBarLayout.ISR) {
        // Reading ISR status clears it (and deasserts INTx).
        data[0] = this.#isr;
        this.#isr = 0;
      }
    } else if (offset < VirtioBarLayout.NOTIFY) {
      const at = offset - VirtioBarLayout.DEVICE;
      this.onConfigRead(at);
      if (at < this.config.length) {
        this.config.copy(data, 0, at, Math.min(this.config.length, at + data.length));
      }
    }
  }

  #writeBar(offset: number, data: Buffer): void {
    if (offset < VirtioBarLayout.ISR) {
      this.#common.write(offset - VirtioBarLayout.COMMON, data);
    } else if (offset >= VirtioBarLayout.DEVICE && offset < VirtioBarLayout.NOTIFY) {
      if (offset - VirtioBarLayout.DEVICE < this.config.length) {
        this.onConfigWrite(offset - VirtioBarLayout.DEVICE, data);
      }
    } else if (offset >= VirtioBarLayout.NOTIFY) {
      const at = offset - VirtioBarLayout.NOTIFY;
      if (at % VirtioBarLayout.NOTIFY_MULTIPLIER === 0) {
        this.#notify(at / VirtioBarLayout.NOTIFY_MULTIPLIER);
      }
    }
  }

  #live(): boolean {
    const { status } = this.#common;
    return (status & VirtioStatus.DRIVER_OK) !== 0 && (status & (VirtioStatus.NEEDS_RESET | VirtioStatus.FAILED)) === 0;
  }

  #notify(index: number): void {
    const queue = this.queues[index];
    if (queue !== undefined && queue.enabled && this.#live()) {
      queue.kick();
    }
  }

  #driverReady(): void {
    this.onDriverOk();
    for (const queue of this.queues) {
      this.#notify(queue.index);
    }
  }

  #deliver(queue: Virtqueue, request: VirtqueueRequest): void {
    const fail = (err: unknown): void => {
      // A request dropped by a reset or a stop may fail on the way out (its DMA refused): not the driver's doing.
      if (!request.dropped) {
        this.needsReset(new VirtqueueError(queue.index, `the device failed a request: ${(err as Error).message}`));
      }
    };
    try {
      const pending = this.onRequest(queue, request);
      if (pending instanceof Promise) {
        pending.catch(fail);
      }
    } catch (err) {
      fail(err);
    }
  }

  /** MSI-X to `vector` when the driver enabled MSI-X, else the ISR bit and INTx. */
  #interrupt(vector: number, isrBit: number): void {
    if (this.#msixEnabled()) {
      if (vector !== VIRTIO_MSI_NO_VECTOR && vector < this.#msixVectors) {
        this.msix(vector);
      }
      return;
    }
    this.#isr |= isrBit;
    this.intx();
  }

  #msixEnabled(): boolean {
    const cap = this.capabilityOffset('msix');
    return cap !== undefined && this.served && (this.configSpace().readUInt16LE(cap + Msix.FLAGS) & Msix.FLAGS_ENABLE) !== 0;
  }

  #saveState(): Buffer {
    const common = this.#common;
    return encodeVirtioState({
      status: common.status, driverFeatures: common.driverFeatures,
      deviceFeatureSelect: common.deviceFeatureSelect, driverFeatureSelect: common.driverFeatureSelect,
      configMsixVector: common.configMsixVector, generation: common.generation, queueSelect: common.queueSelect,
      isr: this.#isr, config: this.config, needsReset: this.needsResetReason?.message,
      queues: this.queues.map((queue) => queue.saveState()),
      typeState: bytesOf(this.saveDeviceState()),
    });
  }

  /** Takes a migrated state: all of it, checked first, or none. */
  #loadState(bytes: Buffer): void {
    const state = decodeVirtioState(bytes, {
      deviceFeatures: this.deviceFeatures, queues: this.queues.length, maxQueueSize: this.queues[0].maxSize,
      configSize: this.config.length, msixVectors: this.#msixVectors,
    });
    // The type's state first: if it refuses it, the transport is untouched.
    if (state.typeState !== undefined) {
      this.loadDeviceState(state.typeState);
    }
    const common = this.#common;
    common.status = state.status;
    common.driverFeatures = state.driverFeatures;
    common.deviceFeatureSelect = state.deviceFeatureSelect;
    common.driverFeatureSelect = state.driverFeatureSelect;
    common.configMsixVector = state.configMsixVector;
    common.generation = state.generation;
    common.queueSelect = state.queueSelect;
    this.#isr = state.isr;
    state.config.copy(this.config);
    this.needsResetReason = state.needsReset === undefined ? undefined : new Error(state.needsReset);
    state.queues.forEach((queueState, i) => this.queues[i].loadState(queueState));
  }

  #reset(): void {
    this.#common.reset();
    this.#isr = 0;
    this.needsResetReason = undefined;
    for (const queue of this.queues) {
      queue.reset();
    }
    this.onVirtioReset();
  }
}
