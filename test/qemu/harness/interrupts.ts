/**
 * Message-signalled interrupts without a guest: a vector's message address
 * is pointed at ordinary guest RAM instead of the APIC, so an interrupt
 * arrives as a 32-bit write of its message data there, which qtest can read.
 * Also: polling helpers for "it arrived" and "it did not arrive".
 */
import { PciFunction } from './pci';
import { QtestConnection } from './qtest';

/** Guest RAM where the tests let interrupts land (1 MiB, plain RAM under -nodefaults). */
export const MSG_RAM = 0x100000;

// MSI-X capability layout (PCI spec; linux/pci_regs.h).
export const MSIX_FLAGS = 2;
export const MSIX_TABLE = 4;
export const MSIX_PBA = 8;
export const MSIX_FLAGS_ENABLE = 0x8000;
export const MSIX_FLAGS_MASKALL = 0x4000;
export const MSIX_ENTRY_SIZE = 16;
export const MSIX_ENTRY_VECTOR_CTRL = 12;

// MSI capability layout, 64-bit variant.
export const MSI_FLAGS = 2;
export const MSI_ADDRESS_LO = 4;
export const MSI_ADDRESS_HI = 8;
export const MSI_DATA_64 = 0xc;
export const MSI_MASK_64 = 0x10;
export const MSI_PENDING_64 = 0x14;
export const MSI_FLAGS_ENABLE = 0x1;
export const MSI_FLAGS_64BIT = 0x80;
export const MSI_FLAGS_MASKBIT = 0x100;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` until it returns something other than undefined, and
 * resolves with that; resolves with undefined after `timeoutMs`.
 */
export async function pollFor<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 1000, intervalMs = 1): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined || Date.now() >= deadline) {
      return value;
    }
    await sleep(intervalMs);
  }
}

/** Waits until the dword at `addr` equals `expected`; the last value seen otherwise. */
export async function waitForDword(q: QtestConnection, addr: number, expected: number, timeoutMs = 1000): Promise<number> {
  let last = 0;
  const hit = await pollFor(async () => {
    last = await q.readl(addr);
    return last === expected >>> 0 ? last : undefined;
  }, timeoutMs);
  return hit ?? last;
}

/** Where a function's MSI-X table and PBA are, from its capability. */
export interface MsixLayout {
  cap: number;
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export async function readMsixLayout(dev: PciFunction, cap: number): Promise<MsixLayout> {
  const flags = await dev.read16(cap + MSIX_FLAGS);
  const table = await dev.read32(cap + MSIX_TABLE);
  const pba = await dev.read32(cap + MSIX_PBA);
  return {
    cap,
    vectors: (flags & 0x7ff) + 1,
    tableBar: table & 7,
    tableOffset: table & ~7,
    pbaBar: pba & 7,
    pbaOffset: pba & ~7,
  };
}

/** Writes one MSI-X table entry through the BAR that holds the table. */
export async function writeMsixEntry(
  dev: PciFunction,
  l: MsixLayout,
  vector: number,
  entry: { address: number; data: number; masked: boolean },
): Promise<void> {
  const at = l.tableOffset + vector * MSIX_ENTRY_SIZE;
  await dev.barWrite(l.tableBar, at, 4, entry.address);
  await dev.barWrite(l.tableBar, at + 4, 4, 0);
  await dev.barWrite(l.tableBar, at + 8, 4, entry.data);
  await dev.barWrite(l.tableBar, at + MSIX_ENTRY_VECTOR_CTRL, 4, entry.masked ? 1 : 0);
}

/** Sets or clears one entry's mask bit. */
export async function maskMsixVector(dev: PciFunction, l: MsixLayout, vector: number, masked: boolean): Promise<void> {
  await dev.barWrite(l.tableBar, l.tableOffset + vector * MSIX_ENTRY_SIZE + MSIX_ENTRY_VECTOR_CTRL, 4, masked ? 1 : 0);
}

/** Reads the PBA's first dword (pending bits of vectors 0-31) through the BAR. */
export function readMsixPba(dev: PciFunction, l: MsixLayout): Promise<number> {
  return dev.barRead(l.pbaBar, l.pbaOffset, 4);
}

/** Writes the MSI-X message control's enable and function-mask bits. */
export async function setMsixControl(dev: PciFunction, cap: number, enable: boolean, functionMask: boolean): Promise<void> {
  await dev.write16(cap + MSIX_FLAGS, (enable ? MSIX_FLAGS_ENABLE : 0) | (functionMask ? MSIX_FLAGS_MASKALL : 0));
}

/**
 * Programs a 64-bit MSI capability with one address and data, then enables
 * it with `log2Vectors` vectors (vector n writes data + n).
 */
export async function enableMsi(dev: PciFunction, cap: number, address: number, data: number, log2Vectors = 0): Promise<void> {
  const flags = await dev.read16(cap + MSI_FLAGS);
  if ((flags & MSI_FLAGS_64BIT) === 0) {
    throw new Error('the harness only drives 64-bit MSI capabilities');
  }
  await dev.write32(cap + MSI_ADDRESS_LO, address);
  await dev.write32(cap + MSI_ADDRESS_HI, 0);
  await dev.write16(cap + MSI_DATA_64, data);
  await dev.write16(cap + MSI_FLAGS, (flags & ~0x70) | (log2Vectors << 4) | MSI_FLAGS_ENABLE);
}
