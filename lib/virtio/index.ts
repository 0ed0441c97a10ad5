/**
 * Virtio 1.x devices on the modern PCI transport: subclass
 * {@link VirtioDevice}, serve the requests its queues yield.
 *
 * @packageDocumentation
 */
export {
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_MODERN_DEVICE_BASE,
  VIRTIO_PCI_VENDOR,
  VIRTQ_DESC_SIZE,
  VIRTQ_MAX_SIZE,
  VirtioCommonCfg,
  VirtioDeviceType,
  VirtioFeature,
  VirtioIsr,
  VirtioPciCap,
  VirtioStatus,
  VirtqDescFlag,
  VirtqRingFlag,
} from './constants';
export { VirtioBarLayout, VirtioDevice, type VirtioDeviceOptions } from './device';
export { type GuestSegment } from './guest-buffers';
export { VirtqueueRequest } from './request';
export { Virtqueue, VirtqueueError } from './virtqueue';
