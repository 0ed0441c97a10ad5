/**
 * The device outlives its QEMU: machine resets reach it, and when QEMU quits
 * or is killed outright the device keeps its state and serves the next one.
 */
import {
  cleanupAll,
  leftovers,
  locate,
  makeTempDir,
  MSIX_FLAGS,
  openSession,
  PCI_BASE_ADDRESS_0,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  peekRegion,
  Qemu,
  resetMachine,
  RunningDevice,
  Session,
} from './harness';
import { SCRATCHPAD, targets } from './scratchpad';
import { describeWithQemu } from './support';

const { reg } = SCRATCHPAD;

/** Fills BAR0's RAM and the I/O BAR with a pattern that depends on `seed`. */
async function fillRams(s: Session, seed: number): Promise<{ mem: Buffer; io: Buffer }> {
  const mem = Buffer.alloc(SCRATCHPAD.bar0Size - reg.ram);
  for (let i = 0; i < mem.length; i++) {
    mem[i] = (i * 13 + seed) & 0xff;
  }
  await s.dev.barWriteBlock(0, reg.ram, mem);
  const io = Buffer.alloc(SCRATCHPAD.ioRamSize);
  for (let off = 0; off < io.length; off += 4) {
    const value = (0x9e3779b9 * (off + seed)) >>> 0;
    io.writeUInt32LE(value, off);
    await s.dev.barWrite(SCRATCHPAD.ioRamBar, off, 4, value);
  }
  return { mem, io };
}

async function readRams(s: Session): Promise<{ mem: Buffer; io: Buffer }> {
  const mem = await s.dev.barReadBlock(0, reg.ram, SCRATCHPAD.bar0Size - reg.ram);
  const io = Buffer.alloc(SCRATCHPAD.ioRamSize);
  for (let off = 0; off < io.length; off += 4) {
    io.writeUInt32LE(await s.dev.barRead(SCRATCHPAD.ioRamBar, off, 4), off);
  }
  return { mem, io };
}

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describeWithQemu('QEMU lifecycle', () => {
  describe.each(targets)('$name', (target) => {
    test('QMP system_reset reaches the device, and the machine comes back usable', async () => {
      const device = await target.start(makeTempDir());
      const s = await openSession({ deviceSocket: device.socketPath });
      const resetsBefore = await s.dev.barRead(0, reg.resets, 4);
      // QEMU resets the device once as it connects.
      expect(resetsBefore).toBeGreaterThanOrEqual(1);
      await s.dev.barWrite(0, reg.scratch, 4, 0xfeed);

      await resetMachine(s, false);
      // The reset undid the firmware's work: no decoding, no BARs.
      expect(await s.dev.read16(PCI_COMMAND)).toBe(0);
      expect(await s.dev.read32(PCI_BASE_ADDRESS_0)).toBe(0);

      await s.dev.assignBars();
      await s.dev.enable();
      expect(await s.dev.barRead(0, reg.resets, 4)).toBe(resetsBefore + 1);
      // The card's reset handler clears its scratch register.
      expect(await s.dev.barRead(0, reg.scratch, 4)).toBe(0);
      expect(await s.dev.barRead(0, reg.id, 4)).toBe(SCRATCHPAD.idValue);

      await resetMachine(s);
      expect(await s.dev.barRead(0, reg.resets, 4)).toBe(resetsBefore + 2);
    });

    // Any reset of a PCI function stops decoding, disables MSI and MSI-X and
    // returns MSI's vector count and mask bits to 0; QEMU (and so the guest)
    // sees that after system_reset, and the device's own config space, which
    // decides how it signals, must agree.
    test('after system_reset the device, like QEMU, has MSI, MSI-X and decoding disabled', async () => {
      const device = await target.start(makeTempDir());
      const s = await openSession({ deviceSocket: device.socketPath });
      const msix = (await s.dev.findCapability(PCI_CAP_ID_MSIX))!;
      const msi = (await s.dev.findCapability(PCI_CAP_ID_MSI))!;
      const msiFlags = await s.dev.read16(msi + 2);
      // The card's MSI has per-vector masks, after a 32- or 64-bit address.
      expect(msiFlags & 0x100).toBe(0x100);
      const msiMask = msi + (msiFlags & 0x80 ? 0x10 : 0x0c);
      // Enabled with 4 vectors, two of them masked.
      await s.dev.write16(msi + 2, msiFlags | 0x21);
      await s.dev.write32(msiMask, 0x5);
      await s.dev.write16(msix + MSIX_FLAGS, 0xc000);
      expect((await s.dev.read16(msi + 2)) & 0x71).toBe(0x21);
      expect(await s.dev.read32(msiMask)).toBe(0x5);
      expect((await s.dev.read16(msix + MSIX_FLAGS)) & 0xc000).toBe(0xc000);

      await resetMachine(s, false);
      const guestView = {
        command: await s.dev.read16(PCI_COMMAND),
        msi: await s.dev.read16(msi + 2),
        msiMask: await s.dev.read32(msiMask),
        msix: await s.dev.read16(msix + MSIX_FLAGS),
      };
      expect(guestView.command).toBe(0);
      expect(guestView.msi & 0x71).toBe(0);
      expect(guestView.msiMask).toBe(0);
      expect(guestView.msix & 0xc000).toBe(0);
      await s.qemu.kill();
      const deviceView = {
        command: (await peekRegion(device.socketPath, PCI_COMMAND, 2)).readUInt16LE(0),
        msi: (await peekRegion(device.socketPath, msi + 2, 2)).readUInt16LE(0),
        msiMask: (await peekRegion(device.socketPath, msiMask, 4)).readUInt32LE(0),
        msix: (await peekRegion(device.socketPath, msix + MSIX_FLAGS, 2)).readUInt16LE(0),
      };
      expect(deviceView).toEqual(guestView);
    });

    test('QEMU killed with SIGKILL mid-session: the device keeps its memory and serves a new QEMU', async () => {
      const device = await target.start(makeTempDir());
      const first = await openSession({ deviceSocket: device.socketPath });
      const written = await fillRams(first, 1);
      const resetsBefore = await first.dev.barRead(0, reg.resets, 4);

      // Kill while accesses are in flight: a burst of posted writes not yet answered.
      const inFlight = Array.from({ length: 200 }, (_, i) => first.dev.barWrite(0, reg.scratch, 4, i).catch(() => 'lost'));
      await first.qemu.kill();
      await Promise.all(inFlight);

      const started = Date.now();
      const second = await openSession({ deviceSocket: device.socketPath });
      const reattachMs = Date.now() - started;
      expect(await second.dev.read32(0)).toBe(((SCRATCHPAD.deviceId << 16) | SCRATCHPAD.vendorId) >>> 0);
      expect(await second.dev.barRead(0, reg.id, 4)).toBe(SCRATCHPAD.idValue);

      const kept = await readRams(second);
      expect(kept.mem.equals(written.mem)).toBe(true);
      expect(kept.io.equals(written.io)).toBe(true);
      // Resets seen: the lost connection, then the new QEMU's own on connecting.
      expect(await second.dev.barRead(0, reg.resets, 4)).toBe(resetsBefore + 2);
      expect(reattachMs).toBeLessThan(10000);

      // And the new QEMU can change that state in turn.
      const rewritten = await fillRams(second, 2);
      expect((await readRams(second)).mem.equals(rewritten.mem)).toBe(true);
    });

    test('QEMU quitting through QMP, three times over: each new QEMU finds the device as the last left it', async () => {
      const device: RunningDevice = await target.start(makeTempDir());
      let expected: { mem: Buffer; io: Buffer } | undefined;
      for (let round = 0; round < 3; round++) {
        const s = await openSession({ deviceSocket: device.socketPath });
        if (expected !== undefined) {
          const seen = await readRams(s);
          expect(seen.mem.equals(expected.mem)).toBe(true);
          expect(seen.io.equals(expected.io)).toBe(true);
        }
        expected = await fillRams(s, 10 + round);
        await s.qemu.quit();
        expect(s.qemu.process.exitCode).toBe(0);
      }
    });

    test('cleanup leaves no process and no temporary directory behind', async () => {
      const device = await target.start(makeTempDir());
      const qemu = await Qemu.start({ deviceSocket: device.socketPath });
      await locate(qemu);
      const pids = [qemu.pid];
      expect(pids.every(pidAlive)).toBe(true);
      expect(leftovers().processes).toBeGreaterThanOrEqual(1);

      await cleanupAll();
      expect(leftovers()).toEqual({ processes: 0, directories: [] });
      expect(pids.some(pidAlive)).toBe(false);
    });
  });
});
