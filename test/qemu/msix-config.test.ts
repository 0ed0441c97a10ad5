/**
 * Config writes of 1 and 2 bytes at every offset of the MSI-X capability,
 * as a guest makes them through ECAM (QEMU splits a misaligned one into
 * single bytes before the device sees it). After each write QEMU's view and
 * the device's view of the capability must agree:
 *
 * - QEMU's view is what the guest reads back: read-only bytes unchanged,
 *   enable and function-mask bits as written.
 * - The device's view of enable and function mask decides what it does with
 *   an interrupt, which QEMU cannot hide: enabled and unmasked, the message
 *   lands in guest RAM; function-masked, the device holds it and shows it in
 *   its PBA (QEMU forwards PBA reads to the device); disabled, QEMU has
 *   fallen back to INTx and the line rises. After every write the test rings
 *   vector 0 and checks that the outcome is the one QEMU's view implies.
 * - Then, for each combination of the two bits, QEMU is killed right after
 *   the write and the device's config space is read directly with a
 *   vfio-user client: its bytes must equal what the guest last read.
 */
import {
  makeTempDir,
  MSG_RAM,
  MsixLayout,
  MSIX_FLAGS,
  openSession,
  PCI_CAP_ID_MSIX,
  peekRegion,
  PciFunction,
  pollFor,
  QtestConnection,
  readMsixLayout,
  readMsixPba,
  RunningDevice,
  setMsixControl,
  waitForDword,
  writeMsixEntry,
} from './harness';
import { DeviceTarget, targets } from './scratchpad';
import { describeWithQemu } from './support';

const CAP_LENGTH = 12;
/** Byte 3 of the capability holds the two bits under test. */
const CONTROL_HIGH = 3;
const ENABLE = 0x80;
const MASK_ALL = 0x40;
const MESSAGE = 0x3c3c;

type Outcome = 'delivered' | 'held by the device' | 'INTx' | 'nothing';

function expectedOutcome(controlHigh: number): Outcome {
  if ((controlHigh & ENABLE) === 0) {
    return 'INTx';
  }
  return controlHigh & MASK_ALL ? 'held by the device' : 'delivered';
}

const hex = (b: Buffer): string => b.toString('hex').replace(/(..)/g, '$1 ').trim();

async function readCapability(dev: PciFunction, cap: number): Promise<Buffer> {
  const bytes = Buffer.alloc(CAP_LENGTH);
  for (let i = 0; i < CAP_LENGTH; i += 4) {
    bytes.writeUInt32LE(await dev.read32(cap + i), i);
  }
  return bytes;
}

/**
 * Rings vector 0 and reports what became of it. Leaves no interrupt behind:
 * an INTx is ended, a held vector stays held (the caller releases it).
 */
async function ring(target: DeviceTarget, dev: PciFunction, q: QtestConnection, l: MsixLayout): Promise<Outcome> {
  await q.writel(MSG_RAM, 0);
  const mark = q.irqMark();
  await target.trigger(dev, 0);
  // A BAR read is ordered after a doorbell write (and follows a direct call), so the PBA is current.
  if ((await readMsixPba(dev, l)) & 1) {
    return 'held by the device';
  }
  const outcome = await pollFor<Outcome>(async () => {
    if (q.irqEvents.slice(mark).some((e) => e.level)) {
      return 'INTx';
    }
    return (await q.readl(MSG_RAM)) === MESSAGE ? 'delivered' : undefined;
  }, 1000);
  if (outcome === 'INTx') {
    const line = q.irqEvents.slice(mark).find((e) => e.level)!.line;
    if (q.irqLevel(line)) {
      const end = q.irqMark();
      await dev.barRead(0, 0, 4);
      await q.waitIrq(false, line, 2000, end);
    }
  }
  return outcome ?? 'nothing';
}

interface Case {
  size: 1 | 2;
  offset: number;
  /** Control byte 3 before the write. */
  before: number;
  /** Byte written at control byte 3, when the write covers it. */
  control?: number;
  /** Byte written everywhere else (read-only bytes). */
  fill: number;
}

function cases(): Case[] {
  const all: Case[] = [];
  for (const size of [1, 2] as const) {
    for (let offset = 0; offset + size <= CAP_LENGTH; offset++) {
      const covers = offset <= CONTROL_HIGH && CONTROL_HIGH < offset + size;
      for (const [before, fill] of [
        [ENABLE, 0xff],
        [MASK_ALL, 0x00],
      ]) {
        if (!covers) {
          all.push({ size, offset, before, fill });
          continue;
        }
        for (const control of [0, MASK_ALL, ENABLE, ENABLE | MASK_ALL]) {
          all.push({ size, offset, before, control, fill });
        }
      }
    }
  }
  return all;
}

function valueOf(c: Case): number {
  let value = 0;
  for (let i = 0; i < c.size; i++) {
    const byte = c.offset + i === CONTROL_HIGH ? c.control! : c.fill;
    value |= byte << (8 * i);
  }
  return value;
}

/**
 * Enabling MSI-X while the function is masked: QEMU then gives the device
 * no MSI-X eventfd (every vector counts as masked) and removes the INTx one,
 * so the device must go by its own config space, not by the eventfds it was
 * given last, and hold the vector in its PBA. Kept apart to name that case.
 */
const enablesWhileMasked = (c: Case): boolean =>
  (c.before & ENABLE) === 0 && c.control === (ENABLE | MASK_ALL);

const describeCase = (c: Case): string =>
  `${c.size}-byte write of 0x${valueOf(c).toString(16)} at cap+${c.offset} (control byte 3 was 0x${c.before.toString(16)})`;

/**
 * Runs the cases against a fresh QEMU and returns every disagreement found,
 * described for the failure message.
 */
async function sweep(target: DeviceTarget, all: Case[]): Promise<string[]> {
  const device = await target.start(makeTempDir());
  const { qemu, dev } = await openSession({ deviceSocket: device.socketPath });
  const q = qemu.qtest;
  const cap = (await dev.findCapability(PCI_CAP_ID_MSIX))!;
  const l = await readMsixLayout(dev, cap);
  const original = await readCapability(dev, cap);
  if ((original[CONTROL_HIGH] & (ENABLE | MASK_ALL)) !== 0) {
    return [`MSI-X is already enabled or masked after setup: [${hex(original)}]`];
  }
  await q.irqInterceptIn('ioapic');
  await writeMsixEntry(dev, l, 0, { address: MSG_RAM, data: MESSAGE, masked: false });

  const mismatches: string[] = [];
  for (const c of all) {
    await dev.write16(cap + MSIX_FLAGS, c.before << 8);
    await dev.write(cap + c.offset, c.size, valueOf(c));

    const controlHigh = c.control ?? c.before;
    const expected = Buffer.from(original);
    expected[CONTROL_HIGH] = (original[CONTROL_HIGH] & ~(ENABLE | MASK_ALL)) | controlHigh;
    const seen = await readCapability(dev, cap);
    if (!seen.equals(expected)) {
      mismatches.push(`${describeCase(c)}: QEMU shows [${hex(seen)}], expected [${hex(expected)}]`);
    }

    const wanted = expectedOutcome(seen[CONTROL_HIGH]);
    const got = await ring(target, dev, q, l);
    if (got !== wanted) {
      mismatches.push(
        `${describeCase(c)}: vector 0 was ${got}, but QEMU's control byte 0x${seen[CONTROL_HIGH].toString(16)} means ${wanted}`,
      );
    }
    if (got === 'held by the device') {
      // Unmasking must release exactly that interrupt.
      await setMsixControl(dev, cap, true, false);
      if ((await waitForDword(q, MSG_RAM, MESSAGE)) !== MESSAGE || (await readMsixPba(dev, l)) !== 0) {
        mismatches.push(`${describeCase(c)}: the held vector was not delivered on unmask`);
      }
    }
  }
  return mismatches;
}

describeWithQemu('QEMU and the device agree on the MSI-X capability', () => {
  describe.each(targets)('$name', (target) => {
    test('1- and 2-byte config writes at every offset of the capability', async () => {
      const all = cases().filter((c) => !enablesWhileMasked(c));
      expect(all.length).toBeGreaterThan(40);
      expect(await sweep(target, all)).toEqual([]);
    });

    test('enabling MSI-X while the function is masked: the device holds the vector', async () => {
      const masked = cases().filter(enablesWhileMasked);
      expect(masked.length).toBe(3);
      expect(await sweep(target, masked)).toEqual([]);
    });

    test("the device's own config bytes equal QEMU's view after each kind of write", async () => {
      const device: RunningDevice = await target.start(makeTempDir());
      const mismatches: string[] = [];
      const writes: Array<{ size: 1 | 2; offset: number; control: number }> = [
        { size: 1, offset: CONTROL_HIGH, control: ENABLE },
        { size: 2, offset: 2, control: ENABLE | MASK_ALL },
        { size: 2, offset: CONTROL_HIGH, control: MASK_ALL },
        { size: 1, offset: CONTROL_HIGH, control: 0 },
      ];
      for (const w of writes) {
        const { qemu, dev } = await openSession({ deviceSocket: device.socketPath });
        const cap = (await dev.findCapability(PCI_CAP_ID_MSIX))!;
        const value = w.offset === CONTROL_HIGH ? w.control | (w.size === 2 ? 0xff00 : 0) : (w.control << 8) | 0xff;
        await dev.write(cap + w.offset, w.size, value);
        const guestView = await readCapability(dev, cap);
        // SIGKILL: QEMU gets no chance to tidy the device up on its way out.
        await qemu.kill();
        const deviceView = await peekRegion(device.socketPath, cap, CAP_LENGTH);
        if (!deviceView.equals(guestView)) {
          mismatches.push(
            `${w.size}-byte write of 0x${value.toString(16)} at cap+${w.offset}: guest read [${hex(guestView)}], device holds [${hex(deviceView)}]`,
          );
        }
        expect(guestView[CONTROL_HIGH] & (ENABLE | MASK_ALL)).toBe(w.control);
      }
      expect(mismatches).toEqual([]);
    });
  });
});
