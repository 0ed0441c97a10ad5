/**
 * The vfio-user client: talk to a device the way QEMU does, from a test.
 *
 * @packageDocumentation
 */
export {
  VfioUserClient,
  type DeviceInfo,
  type IrqInfo,
  type MultiWrite,
  type RegionInfo,
  type SparseMmapArea,
  type VfioUserClientEvents,
  type VfioUserClientOptions,
  type VfioUserReply,
} from './client';
export type { RequestOptions } from './channel';
export { GuestMemory, type GuestMemoryOptions } from './guest-memory';
export { InterruptLine } from './interrupt-line';
export {
  Command,
  DeviceInfoFlag,
  DmaFlag,
  HeaderFlag,
  IrqSetFlag,
  RegionInfoFlag,
  type Message,
  type MessageHeader,
  type ServerCapabilities,
} from './protocol';
