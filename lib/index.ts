/**
 * vfio-user for Node.js: describe a PCI device in TypeScript and serve it to
 * QEMU (or any vfio-user client) over a UNIX socket. This is the device side
 * only; the client that tests a device without a VM is `vfio-user/client`,
 * which a served device never loads.
 *
 * @packageDocumentation
 */
export { PciDevice } from './device';
export { DmaSpace, type DmaMapping, type DmaSpaceEvents } from './dma';
export {
  type BarAccessRules,
  type BarDescription,
  type BarRange,
  type ConfigRegistersDescription,
  type LiveVendorCapabilityDescription,
  type CapabilityKind,
  type DeviceDescription,
  type DoorbellDescription,
  type MsixDescription,
  type PciKind,
  type RegionHandlerSource,
} from './description';
export { IoeventfdFlag, type Doorbell } from './doorbell-plan';
export {
  RegisterMap,
  type NarrowRegisterSpec,
  type RegisterExtent,
  type RegisterSpec,
  type RegisterSpecs,
  type RegisterValue,
  type RegisterWrite,
  type WideRegisterSpec,
} from './register-map';
export { MemoryRegion, type RegionHandler } from './region';
export { type DeviceMigration, type MigrationData, type MigrationState } from './migration';
export { STREAM_FORMAT_VERSION } from './migration-stream';
export { VfioUserServer, type VfioUserServerEvents, type VfioUserServerOptions } from './server';
export {
  DSN_CAPABILITY_SIZE,
  dsnCapability,
  EXTENDED_VENDOR_HEADER_SIZE,
  extendedVendorCapability,
  MSI_CAPABILITY_SIZE,
  msiCapability,
  MSIX_CAPABILITY_SIZE,
  msixCapability,
  msixPbaSize,
  msixTableSize,
  PCIE_CAPABILITY_SIZE,
  pcieCapability,
  PM_CAPABILITY_SIZE,
  pmCapability,
  VENDOR_CAPABILITY_HEADER_SIZE,
  vendorCapability,
  type ExtendedVendorOptions,
  type MsiOptions,
  type MsixLayout,
  type PcieOptions,
  type PmOptions,
} from './capabilities';
export {
  CapabilityId,
  CONFIG_SPACE_EXP_SIZE,
  CONFIG_SPACE_SIZE,
  ExtendedCapabilityId,
  Msi,
  Msix,
  PciCommand,
  PciConfig,
  PciExpress,
  PciStatus,
  PowerManagement,
  Region,
  type EventInterruptKind,
  type InterruptKind,
  type ResetKind,
} from './constants';
export {
  AccessRuleError,
  ArgumentError,
  ConfigurationError,
  DeviceDescriptionError,
  DeviceStoppedError,
  DmaError,
  type DmaErrorReason,
  errnoName,
  HandlerError,
  LibraryFeatureError,
  MigrationStreamError,
  MigrationTransitionError,
  OptionsError,
  ProtocolError,
  RegionAccessError,
  TimeoutError,
  VfioUserError,
} from './errors';
