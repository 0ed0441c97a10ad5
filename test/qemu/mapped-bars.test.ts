/**
 * A device with mapped BARs under QEMU: accesses to the mapped ranges go
 * through QEMU's mapping of the shared memory with no message (the server
 * counts none), the rest of the BAR is trapped to the handler, and QEMU
 * hands the device its own mapped windows as DMA regions.
 */
import { serveInProcess } from './devices/serve';
import { makeTempDir, openSession } from './harness';
import { describeWithQemu } from './support';
import { MailboxCard, PAGE } from '../fixtures/mailbox-card';

describeWithQemu('QEMU and mapped BARs', () => {
  test('mapped ranges reach the device memory with no message; the registers stay trapped', async () => {
    const served = serveInProcess(makeTempDir(), () => new MailboxCard());
    const { device, server } = served;
    const { dev } = await openSession({ deviceSocket: served.socketPath });

    await dev.barWrite(0, PAGE + 0x10, 4, 0xcafe_f00d);
    expect(device.barMemory(0).readUInt32LE(PAGE + 0x10)).toBe(0xcafe_f00d);
    device.barMemory(0).writeUInt32LE(0x1234_5678, PAGE + 0x20);
    expect(await dev.barRead(0, PAGE + 0x20, 4)).toBe(0x1234_5678);

    const block = Buffer.alloc(2 * PAGE);
    for (let i = 0; i < block.length; i++) {
      block[i] = (i * 13 + 5) & 0xff;
    }
    await dev.barWriteBlock(2, 0, block);
    expect(device.barMemory(2).equals(block)).toBe(true);
    device.barMemory(2).writeBigUInt64LE(0x0102_0304_0506_0708n, PAGE - 8);
    expect(await dev.barRead64(2, PAGE - 8)).toBe(0x0102_0304_0506_0708n);

    expect(server.mappedAccessMessages(0)).toBe(0);
    expect(server.mappedAccessMessages(2)).toBe(0);

    // The register page is trapped: the handler answers, writes reach it.
    expect(await dev.barRead(0, 0, 4)).toBe(0x4d42_0001);
    await dev.barWrite(0, 4, 4, 0xa5a5_5a5a);
    expect(device.regs.get('scratch')).toBe(0xa5a5_5a5a);
    expect(await dev.barRead(0, 4, 4)).toBe(0xa5a5_5a5a);
    expect(server.mappedAccessMessages(0)).toBe(0);
    expect(served.errors).toEqual([]);
  });

  test('QEMU DMA-maps the mapped windows at their guest addresses, without an fd', async () => {
    const served = serveInProcess(makeTempDir(), () => new MailboxCard());
    const { device } = served;
    const { dev } = await openSession({ deviceSocket: served.socketPath });
    // One access makes sure QEMU has handled the BAR assignment and enable.
    await dev.barRead(0, 0, 4);

    for (const [index, offset, size] of [[0, PAGE, PAGE], [2, 0, 2 * PAGE]] as const) {
      const iova = dev.bar(index).address + offset;
      const window = device.dmaMaps.find((m) => m.iova === iova);
      expect(window).toMatchObject({ iova, length: size, mapped: false });
    }
    // The trapped register page is not handed over.
    expect(device.dmaMaps.find((m) => m.iova === dev.bar(0).address)).toBeUndefined();
  });
});
