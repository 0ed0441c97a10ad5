/**
 * The vfio-user client: talk to a device the way QEMU does, from a test.
 *
 * @packageDocumentation
 */
export {
  VfioUserClient,
  type DeviceInfo,
  type IrqInfo,
  type MigrationFeatures,
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
export { migrate, readConfigSpace, restoreConfigSpace, type MigrateOptions, type MigrationResult } from './migrate';
export {
  DeviceFeature,
  DeviceState,
  FeatureFlag,
  MIGRATION_ARCS,
  MigrationFlag,
  type DirtyRange,
  type DirtyReport,
} from './migration-protocol';
