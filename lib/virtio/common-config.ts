/**
 * The common configuration structure (spec 4.1.4.3): feature windows,
 * device status, and the registers of the selected queue. Accesses of any
 * size and alignment are taken apart into the fields they touch.
 *
 * @packageDocumentation
 */
import { VIRTIO_MSI_NO_VECTOR, VirtioCommonCfg as Cfg, VirtioFeature, VirtioStatus } from './constants';
import type { Virtqueue } from './virtqueue';

/** What the common configuration drives. @internal */
export interface CommonConfigOwner {
  readonly deviceFeatures: bigint;
  readonly queues: readonly Virtqueue[];
  /** MSI-X vectors the function has (0: none). */
  readonly msixVectors: number;
  /** The driver wrote 0 to device_status. */
  resetDevice(): void;
  /** The driver set DRIVER_OK. */
  driverReady(): void;
  /** The driver enabled a queue whose layout is unusable. */
  badQueue(queue: Virtqueue, problem: string): void;
}

const FIELD_WIDTHS: ReadonlyArray<readonly [number, number]> = [
  [Cfg.DEVICE_FEATURE_SELECT, 4], [Cfg.DEVICE_FEATURE, 4], [Cfg.DRIVER_FEATURE_SELECT, 4], [Cfg.DRIVER_FEATURE, 4],
  [Cfg.CONFIG_MSIX_VECTOR, 2], [Cfg.NUM_QUEUES, 2], [Cfg.DEVICE_STATUS, 1], [Cfg.CONFIG_GENERATION, 1],
  [Cfg.QUEUE_SELECT, 2], [Cfg.QUEUE_SIZE, 2], [Cfg.QUEUE_MSIX_VECTOR, 2], [Cfg.QUEUE_ENABLE, 2], [Cfg.QUEUE_NOTIFY_OFF, 2],
  [Cfg.QUEUE_DESC, 4], [Cfg.QUEUE_DESC + 4, 4], [Cfg.QUEUE_DRIVER, 4], [Cfg.QUEUE_DRIVER + 4, 4],
  [Cfg.QUEUE_DEVICE, 4], [Cfg.QUEUE_DEVICE + 4, 4],
];

/** The driver-facing state of the transport. */
export class CommonConfig {
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  /** Features the driver wrote (accepted once FEATURES_OK sticks). */
  driverFeatures = 0n;
  configMsixVector = VIRTIO_MSI_NO_VECTOR;
  status = 0;
  /** Bumped by the device whenever its configuration changes. */
  generation = 0;
  queueSelect = 0;

  constructor(private readonly owner: CommonConfigOwner) {}

  /** Back to the reset state (the generation counter keeps counting). */
  reset(): void {
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatures = 0n;
    this.configMsixVector = VIRTIO_MSI_NO_VECTOR;
    this.status = 0;
    this.queueSelect = 0;
  }

  /** The selected queue, or undefined when queue_select names none (its fields read 0). */
  get selected(): Virtqueue | undefined {
    return this.owner.queues[this.queueSelect];
  }

  read(offset: number, data: Buffer): void {
    const image = this.image();
    data.fill(0);
    if (offset < image.length) {
      image.copy(data, 0, offset, Math.min(image.length, offset + data.length));
    }
  }

  write(offset: number, data: Buffer): void {
    const image = this.image();
    const end = Math.min(image.length, offset + data.length);
    if (offset >= end) {
      return;
    }
    data.copy(image, offset, 0, end - offset);
    for (const [field, width] of FIELD_WIDTHS) {
      if (field < end && field + width > offset) {
        this.apply(field, width === 1 ? image[field] : width === 2 ? image.readUInt16LE(field) : image.readUInt32LE(field));
      }
    }
  }

  /** The structure as the driver reads it now. */
  private image(): Buffer {
    const image = Buffer.alloc(Cfg.SIZE);
    const features = this.owner.deviceFeatures;
    image.writeUInt32LE(this.deviceFeatureSelect, Cfg.DEVICE_FEATURE_SELECT);
    image.writeUInt32LE(featureWord(features, this.deviceFeatureSelect), Cfg.DEVICE_FEATURE);
    image.writeUInt32LE(this.driverFeatureSelect, Cfg.DRIVER_FEATURE_SELECT);
    image.writeUInt32LE(featureWord(this.driverFeatures, this.driverFeatureSelect), Cfg.DRIVER_FEATURE);
    image.writeUInt16LE(this.configMsixVector, Cfg.CONFIG_MSIX_VECTOR);
    image.writeUInt16LE(this.owner.queues.length, Cfg.NUM_QUEUES);
    image[Cfg.DEVICE_STATUS] = this.status;
    image[Cfg.CONFIG_GENERATION] = this.generation & 0xff;
    image.writeUInt16LE(this.queueSelect, Cfg.QUEUE_SELECT);
    const queue = this.selected;
    if (queue !== undefined) {
      image.writeUInt16LE(queue.size, Cfg.QUEUE_SIZE);
      image.writeUInt16LE(queue.msixVector, Cfg.QUEUE_MSIX_VECTOR);
      image.writeUInt16LE(queue.enabled ? 1 : 0, Cfg.QUEUE_ENABLE);
      image.writeUInt16LE(queue.index, Cfg.QUEUE_NOTIFY_OFF);
      image.writeBigUInt64LE(BigInt(queue.descAddress), Cfg.QUEUE_DESC);
      image.writeBigUInt64LE(BigInt(queue.driverAddress), Cfg.QUEUE_DRIVER);
      image.writeBigUInt64LE(BigInt(queue.deviceAddress), Cfg.QUEUE_DEVICE);
    }
    return image;
  }

  /** A vector the function has, else NO_VECTOR (how the driver learns a vector was refused). */
  private vector(value: number): number {
    return value < this.owner.msixVectors ? value : VIRTIO_MSI_NO_VECTOR;
  }

  private apply(field: number, value: number): void {
    const queue = this.selected;
    // Queue registers change only while the queue is off (spec 4.1.4.3.2).
    const queueWritable = queue !== undefined && !queue.enabled;
    switch (field) {
      case Cfg.DEVICE_FEATURE_SELECT:
        this.deviceFeatureSelect = value;
        break;
      case Cfg.DRIVER_FEATURE_SELECT:
        this.driverFeatureSelect = value;
        break;
      case Cfg.DRIVER_FEATURE:
        if ((this.status & VirtioStatus.FEATURES_OK) === 0 && this.driverFeatureSelect < 2) {
          const shift = BigInt(32 * this.driverFeatureSelect);
          this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(value) << shift);
        }
        break;
      case Cfg.CONFIG_MSIX_VECTOR:
        this.configMsixVector = this.vector(value);
        break;
      case Cfg.DEVICE_STATUS:
        this.writeStatus(value);
        break;
      case Cfg.QUEUE_SELECT:
        this.queueSelect = value;
        break;
      case Cfg.QUEUE_SIZE:
        if (queueWritable) {
          queue.size = value;
        }
        break;
      case Cfg.QUEUE_MSIX_VECTOR:
        if (queue !== undefined) {
          queue.msixVector = this.vector(value);
        }
        break;
      case Cfg.QUEUE_ENABLE:
        if (queueWritable && value === 1) {
          const problem = queue.layoutProblem();
          if (problem === undefined) {
            queue.enabled = true;
          } else {
            this.owner.badQueue(queue, problem);
          }
        }
        break;
      case Cfg.QUEUE_DESC:
      case Cfg.QUEUE_DESC + 4:
        if (queueWritable) {
          queue.descAddress = withHalf(queue.descAddress, field - Cfg.QUEUE_DESC, value);
        }
        break;
      case Cfg.QUEUE_DRIVER:
      case Cfg.QUEUE_DRIVER + 4:
        if (queueWritable) {
          queue.driverAddress = withHalf(queue.driverAddress, field - Cfg.QUEUE_DRIVER, value);
        }
        break;
      case Cfg.QUEUE_DEVICE:
      case Cfg.QUEUE_DEVICE + 4:
        if (queueWritable) {
          queue.deviceAddress = withHalf(queue.deviceAddress, field - Cfg.QUEUE_DEVICE, value);
        }
        break;
      default:
        break; // read-only fields
    }
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.owner.resetDevice();
      return;
    }
    const before = this.status;
    // NEEDS_RESET is the device's to set; the driver's other bits are kept as written.
    let status = (value & ~VirtioStatus.NEEDS_RESET) | (before & VirtioStatus.NEEDS_RESET);
    if ((status & VirtioStatus.FEATURES_OK) !== 0 && (before & VirtioStatus.FEATURES_OK) === 0 && !this.featuresAcceptable()) {
      status &= ~VirtioStatus.FEATURES_OK; // the driver reads it back and gives up
    }
    this.status = status;
    if ((status & VirtioStatus.DRIVER_OK) !== 0 && (before & VirtioStatus.DRIVER_OK) === 0) {
      this.owner.driverReady();
    }
  }

  /** The driver accepted only offered features, VERSION_1 among them. */
  private featuresAcceptable(): boolean {
    const version1 = 1n << BigInt(VirtioFeature.VERSION_1);
    return (this.driverFeatures & ~this.owner.deviceFeatures) === 0n && (this.driverFeatures & version1) !== 0n;
  }
}

function featureWord(features: bigint, select: number): number {
  return select < 2 ? Number((features >> BigInt(32 * select)) & 0xffffffffn) : 0;
}

/** A 64-bit address with its low (`half` 0) or high (`half` 4) 32 bits replaced. */
function withHalf(address: number, half: number, value: number): number {
  const full = BigInt(address);
  const replaced = half === 0 ? (full & ~0xffffffffn) | BigInt(value) : (full & 0xffffffffn) | (BigInt(value) << 32n);
  // Addresses past 2^53 cannot be guest memory this process reaches; keep them unusable rather than rounded.
  return replaced > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(replaced);
}
