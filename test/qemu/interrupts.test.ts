/**
 * Interrupts from the device to the guest, end to end through QEMU:
 * MSI-X and MSI messages land in guest RAM (their address points there),
 * INTx shows as an interrupt line of the I/O APIC through qtest's
 * interception. Each target raises them its own way (`trigger`): the C card
 * through its doorbell register, the TypeScript card by calling msix(n),
 * msi(n) or intx() from TypeScript.
 */
import {
  enableMsi,
  makeTempDir,
  maskMsixVector,
  MSG_RAM,
  MSI_MASK_64,
  MSI_PENDING_64,
  openSession,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  pollFor,
  readMsixLayout,
  readMsixPba,
  Session,
  setMsixControl,
  sleep,
  waitForDword,
  writeMsixEntry,
} from './harness';
import { DeviceTarget, ringDoorbell, SCRATCHPAD, targets } from './scratchpad';
import { describeWithQemu } from './support';

/**
 * How long "nothing arrived" is watched for. QEMU reads the device's
 * interrupt eventfds in its own main loop, unordered with the qtest channel,
 * so no reply we can wait for proves that a signal would have landed by then.
 */
const QUIET_MS = 100;

async function start(target: DeviceTarget): Promise<Session> {
  const device = await target.start(makeTempDir());
  return openSession({ deviceSocket: device.socketPath });
}

async function capability(s: Session, id: number): Promise<number> {
  const cap = await s.dev.findCapability(id);
  if (cap === undefined) {
    throw new Error(`the device has no capability 0x${id.toString(16)}`);
  }
  return cap;
}

describeWithQemu('QEMU interrupts', () => {
  describe.each(targets)('$name', (target) => {
    test('MSI-X: every vector delivers its own message into guest RAM', async () => {
      const s = await start(target);
      const { dev } = s;
      const q = s.qemu.qtest;
      const l = await readMsixLayout(dev, await capability(s, PCI_CAP_ID_MSIX));
      expect(l.vectors).toBe(SCRATCHPAD.msix.vectors);

      await q.memset(MSG_RAM, 0x100, 0);
      for (let v = 0; v < l.vectors; v++) {
        await writeMsixEntry(dev, l, v, { address: MSG_RAM + v * 0x10, data: 0xd0d00000 + v, masked: false });
      }
      await setMsixControl(dev, l.cap, true, false);

      for (let v = l.vectors - 1; v >= 0; v--) {
        await target.trigger(dev, v);
        expect(await waitForDword(q, MSG_RAM + v * 0x10, 0xd0d00000 + v)).toBe(0xd0d00000 + v);
      }
      // Each message went to its own address and nowhere else.
      const ram = await q.read(MSG_RAM, 0x40);
      for (let v = 0; v < l.vectors; v++) {
        expect(ram.readUInt32LE(v * 0x10)).toBe(0xd0d00000 + v);
        expect(ram.readUInt32LE(v * 0x10 + 4)).toBe(0);
      }
      // A second interrupt of the same vector is a second message.
      await q.writel(MSG_RAM, 0);
      await target.trigger(dev, 0);
      expect(await waitForDword(q, MSG_RAM, 0xd0d00000)).toBe(0xd0d00000);
      // The card's doorbell register raises them as well.
      await q.writel(MSG_RAM + 0x30, 0);
      await ringDoorbell(dev, 3);
      expect(await waitForDword(q, MSG_RAM + 0x30, 0xd0d00003)).toBe(0xd0d00003);
    });

    test('MSI-X: a vector masked in the table is held by QEMU and delivered on unmask', async () => {
      const s = await start(target);
      const { dev } = s;
      const q = s.qemu.qtest;
      const l = await readMsixLayout(dev, await capability(s, PCI_CAP_ID_MSIX));

      // Unmasked when MSI-X is enabled, so QEMU hands the device an eventfd for it.
      await writeMsixEntry(dev, l, 1, { address: MSG_RAM, data: 0x51, masked: false });
      await setMsixControl(dev, l.cap, true, false);
      await q.writel(MSG_RAM, 0);

      await maskMsixVector(dev, l, 1, true);
      await target.trigger(dev, 1);
      await sleep(QUIET_MS);
      expect(await q.readl(MSG_RAM)).toBe(0);

      await maskMsixVector(dev, l, 1, false);
      expect(await waitForDword(q, MSG_RAM, 0x51)).toBe(0x51);
      // Delivered once: nothing more arrives after clearing the word.
      await q.writel(MSG_RAM, 0);
      await sleep(QUIET_MS);
      expect(await q.readl(MSG_RAM)).toBe(0);
    });

    test('MSI-X: with the function masked the device holds the vector, shows it in its PBA, delivers it on unmask', async () => {
      const s = await start(target);
      const { dev } = s;
      const q = s.qemu.qtest;
      const l = await readMsixLayout(dev, await capability(s, PCI_CAP_ID_MSIX));

      await writeMsixEntry(dev, l, 2, { address: MSG_RAM, data: 0x77, masked: false });
      await setMsixControl(dev, l.cap, true, false);
      await q.writel(MSG_RAM, 0);
      expect(await readMsixPba(dev, l)).toBe(0);

      await setMsixControl(dev, l.cap, true, true);
      await target.trigger(dev, 2);
      // QEMU passes guest reads of the PBA to the device: its pending bit shows.
      expect(await readMsixPba(dev, l)).toBe(1 << 2);
      await sleep(QUIET_MS);
      expect(await q.readl(MSG_RAM)).toBe(0);

      await setMsixControl(dev, l.cap, true, false);
      expect(await waitForDword(q, MSG_RAM, 0x77)).toBe(0x77);
      expect(await readMsixPba(dev, l)).toBe(0);
    });

    test('MSI: messages of each vector in guest RAM; a masked vector is delivered on unmask', async () => {
      const s = await start(target);
      const { dev } = s;
      const q = s.qemu.qtest;
      const cap = await capability(s, PCI_CAP_ID_MSI);

      await q.writel(MSG_RAM, 0);
      // Four vectors (log2 = 2): vector n writes data | n.
      await enableMsi(dev, cap, MSG_RAM, 0x4440, 2);
      for (let v = 0; v < SCRATCHPAD.msi.vectors; v++) {
        await target.trigger(dev, v);
        expect(await waitForDword(q, MSG_RAM, 0x4440 | v)).toBe(0x4440 | v);
      }

      await q.writel(MSG_RAM, 0);
      await dev.write32(cap + MSI_MASK_64, 1 << 3);
      await target.trigger(dev, 3);
      await sleep(QUIET_MS);
      expect(await q.readl(MSG_RAM)).toBe(0);
      // Other vectors are not held back by vector 3's mask.
      await target.trigger(dev, 1);
      expect(await waitForDword(q, MSG_RAM, 0x4441)).toBe(0x4441);

      await q.writel(MSG_RAM, 0);
      await dev.write32(cap + MSI_MASK_64, 0);
      expect(await waitForDword(q, MSG_RAM, 0x4443)).toBe(0x4443);
      expect(await dev.read32(cap + MSI_PENDING_64)).toBe(0);
    });

    test('INTx: the line rises, stays up until a BAR access ends the interrupt, and honours INTx disable', async () => {
      const s = await start(target);
      const { dev } = s;
      const q = s.qemu.qtest;
      await q.irqInterceptIn('ioapic');

      // MSI and MSI-X are off after setup, so the trigger raises INTx.
      const mark = q.irqMark();
      await target.trigger(dev, 0);
      const raised = await q.waitIrq(true, undefined, 2000, mark);
      await sleep(QUIET_MS / 2);
      expect(q.irqLevel(raised.line)).toBe(true);

      // Any BAR access is QEMU's end of interrupt for a level-triggered INTx.
      const beforeEoi = q.irqMark();
      expect(await dev.barRead(0, SCRATCHPAD.reg.id, 4)).toBe(SCRATCHPAD.idValue);
      await q.waitIrq(false, raised.line, 2000, beforeEoi);

      // With INTx disabled in the command register the line stays low...
      const command = await dev.read16(PCI_COMMAND);
      await dev.write16(PCI_COMMAND, command | PCI_COMMAND_INTX_DISABLE);
      const whileDisabled = q.irqMark();
      await target.trigger(dev, 0);
      await sleep(QUIET_MS);
      expect(q.irqEvents.slice(whileDisabled)).toEqual([]);
      await dev.write16(PCI_COMMAND, command);
      // ...and the interrupt, still asserted, shows when INTx is enabled again (PCI's rule).
      const again = await q.waitIrq(true, raised.line, 2000, whileDisabled);
      expect(again.line).toBe(raised.line);
      const end = q.irqMark();
      await dev.barRead(0, SCRATCHPAD.reg.id, 4);
      await q.waitIrq(false, raised.line, 2000, end);

      // While MSI-X is enabled the trigger no longer touches the INTx line.
      const l = await readMsixLayout(dev, await capability(s, PCI_CAP_ID_MSIX));
      await writeMsixEntry(dev, l, 0, { address: MSG_RAM, data: 0x99, masked: false });
      await q.writel(MSG_RAM, 0);
      await setMsixControl(dev, l.cap, true, false);
      const withMsix = q.irqMark();
      await target.trigger(dev, 0);
      expect(await waitForDword(q, MSG_RAM, 0x99)).toBe(0x99);
      expect(await pollFor(() => (q.irqEvents.length > withMsix ? true : undefined), QUIET_MS)).toBeUndefined();
    });
  });
});
