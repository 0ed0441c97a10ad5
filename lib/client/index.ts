/**
 * The vfio-user client: talk to a device the way QEMU does, from a test.
 *
 * @packageDocumentation
 */
export { VfioUserClient, type VfioUserClientEvents, type VfioUserClientOptions } from './client';
export {
  RegionClient,
  type DeviceInfo,
  type IrqInfo,
  type MultiWrite,
  type RegionInfo,
  type SparseMmapArea,
  type VfioUserReply,
} from './region-client';
export { RegionMapping, type MappedArea } from './region-mapping';
export { InterruptClient } from './interrupt-client';
export { IoEventfd, IoFdClient, type IoFdType, type RegionIoFd, type RegionIoFds } from './io-fd-client';
export { DmaClient } from './dma-client';
export { MigrationClient, type MigrationFeatures } from './migration-client';
export type { RequestOptions } from './channel';
export {
  ArgumentError,
  MigrationTransitionError,
  OptionsError,
  ProtocolError,
  RegionAccessError,
  TimeoutError,
  VfioUserError,
} from '../errors';
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
