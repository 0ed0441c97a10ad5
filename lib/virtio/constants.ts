/**
 * Numbers from the virtio 1.x specification: device status bits, feature
 * bits of the transport and the rings, PCI capability types, the common
 * configuration layout, descriptor flags and device types.
 *
 * @packageDocumentation
 */

/** Bits of `device_status` (spec 2.1). */
export const VirtioStatus = {
  ACKNOWLEDGE: 0x01,
  DRIVER: 0x02,
  DRIVER_OK: 0x04,
  FEATURES_OK: 0x08,
  /** Set by the device: it hit an error it cannot recover from until reset. */
  NEEDS_RESET: 0x40,
  /** Set by the driver: it gave up on the device. */
  FAILED: 0x80,
} as const;

/** Feature bits every device type shares (spec 6), as bit numbers. */
export const VirtioFeature = {
  /** Descriptors may point at a table of descriptors. */
  RING_INDIRECT_DESC: 28,
  /** `used_event` / `avail_event` suppress interrupts and notifications. */
  RING_EVENT_IDX: 29,
  /** A virtio 1.x device (required here: this layer is "modern" only). */
  VERSION_1: 32,
} as const;

/** `cfg_type` of the virtio PCI capabilities (spec 4.1.4). */
export const VirtioPciCap = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** Offsets in the common configuration structure (spec 4.1.4.3). */
export const VirtioCommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  /** Bytes in the structure (through `queue_device`, as virtio 1.0 has it). */
  SIZE: 0x38,
} as const;

/** The MSI-X vector value meaning "no interrupt" (spec 4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Bits of the ISR status byte (spec 4.1.4.5). */
export const VirtioIsr = {
  QUEUE: 0x1,
  CONFIG: 0x2,
} as const;

/** Split virtqueue descriptor flags (spec 2.7.5). */
export const VirtqDescFlag = {
  NEXT: 0x1,
  WRITE: 0x2,
  INDIRECT: 0x4,
} as const;

/** Flags in the available ring (driver to device) and used ring (device to driver). */
export const VirtqRingFlag = {
  /** avail.flags: the driver wants no interrupt (without EVENT_IDX). */
  AVAIL_NO_INTERRUPT: 0x1,
  /** used.flags: the device wants no notification (without EVENT_IDX). */
  USED_NO_NOTIFY: 0x1,
} as const;

/** Bytes of one split-ring descriptor. */
export const VIRTQ_DESC_SIZE = 16;

/** Largest queue size the spec allows. */
export const VIRTQ_MAX_SIZE = 32768;

/** Virtio device IDs (spec 5); the PCI device ID is 0x1040 plus the ID. */
export const VirtioDeviceType = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
} as const;

/** PCI vendor ID of virtio devices. */
export const VIRTIO_PCI_VENDOR = 0x1af4;

/** PCI device ID of a modern (non-transitional) device: 0x1040 plus its virtio type. */
export const VIRTIO_PCI_MODERN_DEVICE_BASE = 0x1040;
