/**
 * Guest accesses to the device's BARs, through QEMU's memory and I/O
 * dispatch and its vfio-user client, reach the device and come back.
 */
import { makeTempDir, openSession, PCI_COMMAND, PCI_COMMAND_MEMORY } from './harness';
import { SCRATCHPAD, targets } from './scratchpad';
import { describeWithQemu } from './support';

const { reg } = SCRATCHPAD;

describeWithQemu('QEMU BAR accesses', () => {
  describe.each(targets)('$name', (target) => {
    test('MMIO registers: read-only ID, read/write scratch, writes to read-only ignored', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath });

      expect(await dev.barRead(0, reg.id, 4)).toBe(SCRATCHPAD.idValue);
      for (const value of [0x12345678, 0xffffffff, 0, 0xa5a5a5a5]) {
        await dev.barWrite(0, reg.scratch, 4, value);
        expect(await dev.barRead(0, reg.scratch, 4)).toBe(value >>> 0);
      }
      await dev.barWrite(0, reg.id, 4, 0);
      expect(await dev.barRead(0, reg.id, 4)).toBe(SCRATCHPAD.idValue);
    });

    test('MMIO RAM: 1, 2, 4 and 8-byte accesses at every alignment, and blocks', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath });
      const ram = reg.ram;

      await dev.barWriteBlock(0, ram, Buffer.alloc(64));
      for (let off = 0; off < 8; off++) {
        await dev.barWrite(0, ram + 16 + off, 1, 0x10 + off);
        await dev.barWrite(0, ram + 32 + off * 2, 2, 0xbe00 + off);
      }
      await dev.barWrite(0, ram + 52, 4, 0xcafef00d);
      await dev.barWrite64(0, ram + 56, 0x0123456789abcdefn);

      const block = await dev.barReadBlock(0, ram, 64);
      const expected = Buffer.alloc(64);
      for (let off = 0; off < 8; off++) {
        expected[16 + off] = 0x10 + off;
        expected.writeUInt16LE(0xbe00 + off, 32 + off * 2);
      }
      expected.writeUInt32LE(0xcafef00d, 52);
      expected.writeBigUInt64LE(0x0123456789abcdefn, 56);
      expect(block.toString('hex')).toBe(expected.toString('hex'));

      // Reads of every size at every alignment see the same bytes.
      for (let off = 0; off < 8; off++) {
        expect(await dev.barRead(0, ram + 16 + off, 1)).toBe(expected[16 + off]);
        expect(await dev.barRead(0, ram + 32 + off, 2)).toBe(expected.readUInt16LE(32 + off));
        expect(await dev.barRead(0, ram + 48 + off, 4)).toBe(expected.readUInt32LE(48 + off));
      }
      expect(await dev.barRead64(0, ram + 56)).toBe(0x0123456789abcdefn);

      // A larger block, across the whole RAM, survives a round trip.
      const pattern = Buffer.alloc(SCRATCHPAD.bar0Size - ram);
      for (let i = 0; i < pattern.length; i++) {
        pattern[i] = (i * 7 + 3) & 0xff;
      }
      await dev.barWriteBlock(0, ram, pattern);
      expect((await dev.barReadBlock(0, ram, pattern.length)).equals(pattern)).toBe(true);
    });

    test('posted MMIO writes stay in order with the read that follows them', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath });

      // Pipelined: every write is on its way before the first reply arrives.
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 200; i++) {
        writes.push(dev.barWrite(0, reg.ram + (i % 64) * 4, 4, i));
        writes.push(dev.barWrite(0, reg.scratch, 4, i));
      }
      const read = dev.barRead(0, reg.scratch, 4);
      await Promise.all(writes);
      expect(await read).toBe(199);
      // The last of the writes to RAM dword 6 was number 198.
      expect(await dev.barRead(0, reg.ram + 6 * 4, 4)).toBe(198);
    });

    test('I/O BAR: port reads and writes of 1, 2 and 4 bytes reach the device', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath });
      const bar = SCRATCHPAD.ioRamBar;
      expect(dev.bar(bar).kind).toBe('io');

      for (let off = 0; off < SCRATCHPAD.ioRamSize; off += 4) {
        await dev.barWrite(bar, off, 4, (0x01010101 * (off / 4)) ^ 0x5a00ff00);
      }
      for (let off = 0; off < SCRATCHPAD.ioRamSize; off += 4) {
        expect(await dev.barRead(bar, off, 4)).toBe(((0x01010101 * (off / 4)) ^ 0x5a00ff00) >>> 0);
      }
      await dev.barWrite(bar, 0x21, 1, 0x7e);
      await dev.barWrite(bar, 0x42, 2, 0xbeef);
      expect(await dev.barRead(bar, 0x21, 1)).toBe(0x7e);
      expect(await dev.barRead(bar, 0x42, 2)).toBe(0xbeef);
      expect(await dev.barRead(bar, 0x40, 4)).toBe((0xbeef0000 | (((0x01010101 * 0x10) ^ 0x5a00ff00) & 0xffff)) >>> 0);
    });

    test('guest RAM backed by a shared memfd is mapped by the device; without it, it is not', async () => {
      const page = Buffer.alloc(4096);
      for (let i = 0; i < page.length; i++) {
        page[i] = (i * 31 + 7) & 0xff;
      }
      const sum = page.reduce((a, b) => a + b, 0);

      const device = await target.start(makeTempDir());
      const shared = await openSession({ deviceSocket: device.socketPath, memfd: true });
      // The card sums the first page of the first DMA mapping it can read directly: guest RAM at 0.
      await shared.qemu.qtest.write(0, page);
      expect(await shared.dev.barRead(0, reg.dmaSum, 4)).toBe(sum);
      await shared.qemu.qtest.writeb(0, page[0] + 1);
      expect(await shared.dev.barRead(0, reg.dmaSum, 4)).toBe(sum + 1);
      await shared.qemu.quit();

      const unshared = await openSession({ deviceSocket: device.socketPath });
      await unshared.qemu.qtest.write(0, page);
      expect(await unshared.dev.barRead(0, reg.dmaSum, 4)).toBe(0);
    });

    test('with memory decoding off the BAR no longer reaches the device', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath });

      await dev.barWrite(0, reg.scratch, 4, 0x600d);
      const command = await dev.read16(PCI_COMMAND);
      await dev.write16(PCI_COMMAND, command & ~PCI_COMMAND_MEMORY);
      await dev.barWrite(0, reg.scratch, 4, 0xbad);
      expect(await dev.barRead(0, reg.id, 4)).not.toBe(SCRATCHPAD.idValue);
      await dev.write16(PCI_COMMAND, command);
      expect(await dev.barRead(0, reg.scratch, 4)).toBe(0x600d);
    });
  });
});
