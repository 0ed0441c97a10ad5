/**
 * The "scratchpad" card that the QEMU tests drive: what the C sample device
 * (vendor/libvfio-user/samples/sample_server.c) implements, written down
 * once so that every implementation of the same card (the C sample and the
 * TypeScript one in devices/scratchpad.ts) runs the very same tests by being
 * in `targets`.
 */
import { Scratchpad } from './devices/scratchpad';
import { ServedDevice, typescriptDevice } from './devices/serve';
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
  /** The vendor-specific capability's bytes after its header. */
  vendorData: 'sampl',
  /** Device serial number capability (extended, at 0x100). */
  dsn: { id: 0x0003, serial: 0x9abcdef012345678n },
} as const;

export interface DeviceTarget {
  name: string;
  start: DeviceFactory;
  /** Makes the device raise interrupt vector `vector` of whichever type is enabled. */
  trigger(dev: PciFunction, vector: number): Promise<void> | void;
  /** Where this implementation differs from the C card by design, for people reading test names and failures. */
  differences: string[];
}

/** The card's own way: write the vector number to its doorbell register. */
export const ringDoorbell = (dev: PciFunction, vector: number): Promise<void> =>
  dev.barWrite(0, SCRATCHPAD.reg.doorbell, 4, vector);

/** TypeScript scratchpads being served in this process, newest last. */
const served: Array<ServedDevice<Scratchpad>> = [];

/** The one TypeScript scratchpad currently served here (tests serve one at a time). */
export function servedScratchpad(): Scratchpad {
  const live = served.filter((s) => s.server.listening);
  if (live.length !== 1) {
    throw new Error(`${live.length} TypeScript scratchpads are being served: trigger() needs exactly one`);
  }
  return live[0].device;
}

export const cTarget: DeviceTarget = {
  name: 'C sample_server',
  start: sampleServer(),
  trigger: ringDoorbell,
  differences: [],
};

/**
 * devices/scratchpad.ts served in this process. Its trigger calls
 * msix(n), msi(n) or intx() from TypeScript (by the mode the device's config
 * space shows) instead of ringing the doorbell, so every interrupt test shows
 * those calls delivered through QEMU; the doorbell is tested on its own.
 */
export const typescriptTarget: DeviceTarget = {
  name: 'TypeScript scratchpad',
  start: typescriptDevice(
    () => new Scratchpad(),
    (s) => {
      served.splice(0, served.length, ...served.filter((old) => old.server.listening), s);
    },
  ),
  trigger: (_dev, vector) => {
    servedScratchpad().raise(vector);
  },
  differences: [
    'PCI Express capability: the library fills in DEVCAP role-based error reporting, DEVCTL max read request 512 and a x1 2.5 GT/s link, where the C card has zeros',
    'BAR0 registers take accesses of any size (RegisterMap); the C card fails those that are not 4 bytes at a multiple of 4',
  ],
};

/** Every implementation of the scratchpad card; each test runs against each. */
export const targets: DeviceTarget[] = [cTarget, typescriptTarget];
