/**
 * The "scratchpad" card that the QEMU tests drive: what the C sample device
 * (vendor/libvfio-user/samples/sample_server.c) implements, written down
 * once so that any other implementation of the same card (a TypeScript one,
 * later) runs the very same tests by adding itself to `targets`.
 */
import { DeviceFactory, PciFunction, sampleServer } from './harness';

export const SCRATCHPAD = {
  vendorId: 0x1b36,
  deviceId: 0x1100,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1100,
  /** base class 0xff, subclass 0, programming interface 0 */
  classCode: 0xff0000,
  intxPin: 1,
  bars: [
    { index: 0, kind: 'memory', size: 0x1000, is64: false, prefetchable: false },
    { index: 2, kind: 'memory', size: 0x2000, is64: false, prefetchable: false },
    { index: 4, kind: 'io', size: 0x100, is64: false, prefetchable: false },
  ],
  /**
   * BAR0 registers (32-bit) and RAM. dmaSum: byte sum of the first page of
   * the first DMA mapping the device could map (0 when it has none).
   */
  reg: { id: 0x00, scratch: 0x04, doorbell: 0x08, resets: 0x0c, dmaSum: 0x10, ram: 0x100 },
  idValue: 0x5c000001,
  bar0Size: 0x1000,
  /** BAR4 is RAM, all of it. */
  ioRamBar: 4,
  ioRamSize: 0x100,
  msix: { vectors: 4, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x1000 },
  msi: { vectors: 4 },
  /** Standard capabilities in list order: PM, MSI, MSI-X, PCI Express, vendor-specific. */
  capabilities: [0x01, 0x05, 0x11, 0x10, 0x09],
  /** Device serial number capability (extended, at 0x100). */
  dsn: { id: 0x0003, serial: 0x9abcdef012345678n },
} as const;

export interface DeviceTarget {
  name: string;
  start: DeviceFactory;
  /** Makes the device raise interrupt vector `vector` of whichever type is enabled. */
  trigger(dev: PciFunction, vector: number): Promise<void>;
}

/** The card's own way: write the vector number to its doorbell register. */
export const ringDoorbell = (dev: PciFunction, vector: number): Promise<void> =>
  dev.barWrite(0, SCRATCHPAD.reg.doorbell, 4, vector);

/** Every implementation of the scratchpad card; each test runs against each. */
export const targets: DeviceTarget[] = [{ name: 'C sample_server', start: sampleServer(), trigger: ringDoorbell }];
