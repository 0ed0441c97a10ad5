/**
 * Numbers from the PCI specification (as named in `<linux/pci_regs.h>`) and
 * from the VFIO / vfio-user interfaces, shared by the device side and the
 * client.
 *
 * @packageDocumentation
 */

/** Region indices of a VFIO PCI device: BAR0 to BAR5, expansion ROM, config space, VGA. */
export const Region = {
  /** Base address register 0. */
  BAR0: 0,
  /** Base address register 1. */
  BAR1: 1,
  /** Base address register 2. */
  BAR2: 2,
  /** Base address register 3. */
  BAR3: 3,
  /** Base address register 4. */
  BAR4: 4,
  /** Base address register 5. */
  BAR5: 5,
  /** Expansion ROM. */
  ROM: 6,
  /** PCI configuration space. */
  CONFIG: 7,
  /** Legacy VGA ranges. */
  VGA: 8,
} as const;

/**
 * The VFIO IRQ indices, as the protocol and the C library number interrupt
 * types. Internal: the API names them by {@link InterruptKind} and
 * {@link EventInterruptKind}.
 */
export const IrqType = {
  /** Legacy pin interrupt. */
  INTX: 0,
  /** Message signalled interrupts. */
  MSI: 1,
  /** Extended message signalled interrupts. */
  MSIX: 2,
  /** Error reporting. */
  ERR: 3,
  /** Device request (the host asks for the device back). */
  REQ: 4,
} as const;

/** The kinds of interrupt a device raises: legacy pin (INTx), MSI or MSI-X. */
export type InterruptKind = 'intx' | 'msi' | 'msix';

/** The one-vector interrupts outside the function's interrupt mode: error (ERR) and device request (REQ). */
export type EventInterruptKind = 'err' | 'req';

/** The VFIO IRQ index of an interrupt kind. */
export function irqIndexOf(kind: InterruptKind): number {
  return kind === 'intx' ? IrqType.INTX : kind === 'msi' ? IrqType.MSI : IrqType.MSIX;
}

/** Why a device is being reset. */
export type ResetKind = 'device' | 'lost-connection' | 'flr';

/** Reset types as the C library numbers them (`vfu_reset_type_t`). */
export const ResetType = {
  /** The client sent DEVICE_RESET. */
  DEVICE: 0,
  /** The client went away (or the server is closing). */
  LOST_CONN: 1,
  /** The client started a function-level reset through the PCIe capability. */
  PCI_FLR: 2,
} as const;

/** PCI configuration-space register offsets of the type 0 header. */
export const PciConfig = {
  /** Vendor ID, 16 bits. */
  VENDOR_ID: 0x00,
  /** Device ID, 16 bits. */
  DEVICE_ID: 0x02,
  /** Command register, 16 bits. */
  COMMAND: 0x04,
  /** Status register, 16 bits. */
  STATUS: 0x06,
  /** Revision ID, 8 bits. */
  REVISION_ID: 0x08,
  /** Programming interface (lowest byte of the class code). */
  CLASS_PROG: 0x09,
  /** Sub-class and base class, 16 bits. */
  CLASS_DEVICE: 0x0a,
  /** Header type, 8 bits. */
  HEADER_TYPE: 0x0e,
  /** First base address register; BAR n is at 0x10 + 4n. */
  BASE_ADDRESS_0: 0x10,
  /** Subsystem vendor ID, 16 bits. */
  SUBSYSTEM_VENDOR_ID: 0x2c,
  /** Subsystem ID, 16 bits. */
  SUBSYSTEM_ID: 0x2e,
  /** Expansion ROM base address, 32 bits. */
  ROM_ADDRESS: 0x30,
  /** Offset of the first capability, 8 bits. */
  CAPABILITY_LIST: 0x34,
  /** Interrupt line, 8 bits. */
  INTERRUPT_LINE: 0x3c,
  /** Interrupt pin (1 = INTA), 8 bits. */
  INTERRUPT_PIN: 0x3d,
} as const;

/** Bits of the PCI command register. */
export const PciCommand = {
  /** I/O space decoding enabled. */
  IO: 0x1,
  /** Memory space decoding enabled. */
  MEMORY: 0x2,
  /** Bus mastering (DMA) enabled. */
  MASTER: 0x4,
  /** INTx emulation disabled. */
  INTX_DISABLE: 0x400,
} as const;

/** Bits of the PCI status register. */
export const PciStatus = {
  /** INTx asserted. */
  INTERRUPT: 0x8,
  /** The capability list exists. */
  CAP_LIST: 0x10,
} as const;

/** Standard capability IDs. */
export const CapabilityId = {
  /** Power management. */
  PM: 0x01,
  /** Message signalled interrupts. */
  MSI: 0x05,
  /** Vendor specific. */
  VENDOR: 0x09,
  /** PCI Express. */
  EXP: 0x10,
  /** MSI-X. */
  MSIX: 0x11,
} as const;

/** Extended (PCIe, offset 0x100 and up) capability IDs. */
export const ExtendedCapabilityId = {
  /** Device serial number. */
  DSN: 0x03,
  /** Vendor-specific extended capability. */
  VENDOR: 0x0b,
} as const;

/** Offsets and bits inside the MSI-X capability. */
export const Msix = {
  /** Message control register, 16 bits. */
  FLAGS: 2,
  /** Table size minus one, in the message control register. */
  FLAGS_QSIZE: 0x07ff,
  /** Function mask, in the message control register. */
  FLAGS_MASKALL: 0x4000,
  /** MSI-X enable, in the message control register. */
  FLAGS_ENABLE: 0x8000,
  /** Table offset and BIR, 32 bits. */
  TABLE: 4,
  /** PBA offset and BIR, 32 bits. */
  PBA: 8,
  /** The BIR field of the table and PBA registers. */
  BIR_MASK: 0x7,
  /** Bytes per table entry. */
  ENTRY_SIZE: 16,
  /** Offset of the message address (low) in an entry. */
  ENTRY_LOWER_ADDR: 0,
  /** Offset of the message upper address in an entry. */
  ENTRY_UPPER_ADDR: 4,
  /** Offset of the message data in an entry. */
  ENTRY_DATA: 8,
  /** Offset of the vector control word in an entry. */
  ENTRY_VECTOR_CTRL: 12,
  /** The per-vector mask bit of the vector control word. */
  ENTRY_CTRL_MASKBIT: 0x1,
  /** Most vectors an MSI-X capability can describe. */
  MAX_VECTORS: 2048,
} as const;

/** Offsets and bits inside the MSI capability. */
export const Msi = {
  /** Message control register, 16 bits. */
  FLAGS: 2,
  /** MSI enable. */
  FLAGS_ENABLE: 0x0001,
  /** Multiple message capable (log2 of vectors), bits 1-3. */
  FLAGS_QMASK: 0x000e,
  /** Multiple message enable, bits 4-6. */
  FLAGS_QSIZE: 0x0070,
  /** 64-bit addresses supported. */
  FLAGS_64BIT: 0x0080,
  /** Per-vector masking supported. */
  FLAGS_MASKBIT: 0x0100,
  /** Message address (low), 32 bits. */
  ADDRESS_LO: 4,
  /** Message upper address of a 64-bit capability. */
  ADDRESS_HI: 8,
  /** Message data of a 32-bit capability. */
  DATA_32: 8,
  /** Message data of a 64-bit capability. */
  DATA_64: 12,
  /** Mask bits of a 32-bit capability. */
  MASK_32: 12,
  /** Mask bits of a 64-bit capability. */
  MASK_64: 16,
  /** Pending bits of a 32-bit capability. */
  PENDING_32: 16,
  /** Pending bits of a 64-bit capability. */
  PENDING_64: 20,
} as const;

/** Offsets and bits of the power management capability. */
export const PowerManagement = {
  /** Capabilities register, 16 bits. */
  PMC: 2,
  /** Control/status register, 16 bits. */
  CTRL: 4,
  /** Power state field (D0-D3hot) of the control register. */
  CTRL_STATE_MASK: 0x0003,
  /** No_Soft_Reset bit of the control register. */
  CTRL_NO_SOFT_RESET: 0x0008,
  /** PME enable bit of the control register. */
  CTRL_PME_ENABLE: 0x0100,
  /** PME status bit (write 1 to clear) of the control register. */
  CTRL_PME_STATUS: 0x8000,
} as const;

/** Offsets and bits of the PCI Express capability. */
export const PciExpress = {
  /** PCI Express capabilities register (version, device/port type), 16 bits. */
  FLAGS: 2,
  /** Device capabilities, 32 bits. */
  DEVCAP: 4,
  /** Function-level reset capable, in the device capabilities. */
  DEVCAP_FLR: 0x10000000,
  /** Device control, 16 bits. */
  DEVCTL: 8,
  /** Initiate function-level reset, in the device control register. */
  DEVCTL_BCR_FLR: 0x8000,
  /** Device status, 16 bits. */
  DEVSTA: 10,
  /** Link capabilities, 32 bits. */
  LNKCAP: 12,
  /** Link control, 16 bits. */
  LNKCTL: 16,
  /** Link status, 16 bits. */
  LNKSTA: 18,
  /** Device capabilities 2, 32 bits. */
  DEVCAP2: 36,
  /** Device control 2, 16 bits. */
  DEVCTL2: 40,
  /** Size of the capability structure the library keeps. */
  SIZEOF: 60,
} as const;

/** Size of conventional configuration space. */
export const CONFIG_SPACE_SIZE = 256;
/** Size of PCI Express extended configuration space. */
export const CONFIG_SPACE_EXP_SIZE = 4096;
/** Size of the standard type 0 header, where capabilities may begin. */
export const STD_HEADER_SIZE = 64;

/** Region flags of `vfu_setup_region`, passed to the addon. */
export const RegionFlag = {
  /** Readable. */
  READ: 0x1,
  /** Writable. */
  WRITE: 0x2,
  /** Memory BAR (an I/O BAR otherwise). */
  MEM: 0x4,
  /** 64-bit memory BAR. */
  BITS_64: 0x10,
  /** Prefetchable memory BAR. */
  PREFETCH: 0x20,
} as const;

/** Capability flags of `vfu_pci_add_capability`, passed to the addon. */
export const CapabilityFlag = {
  /** An extended capability, at 0x100 or above. */
  EXTENDED: 0x1,
  /** Accesses to the capability, header aside, go to the config-space callback. */
  CALLBACK: 0x2,
} as const;

/** PCI types of `vfu_pci_init`. */
export const PciType = {
  /** Conventional PCI, 256 bytes of config space. */
  CONVENTIONAL: 0,
  /** PCI-X mode 1, 256 bytes of config space. */
  PCI_X_1: 1,
  /** PCI-X mode 2, 4 KiB of config space. */
  PCI_X_2: 2,
  /** PCI Express, 4 KiB of config space. */
  EXPRESS: 3,
} as const;
