/**
 * The expansion ROM as a guest sees it through QEMU: the ROM BAR sizes as
 * the image's BAR, and once placed and enabled the image reads back from
 * memory; writes to it change nothing.
 */
import { PciDevice } from 'vfio-user';

import { serveInProcess } from './devices/serve';
import { makeTempDir, MEM_WINDOW, openSession } from './harness';
import { describeWithQemu } from './support';

const ROM_ADDRESS = 0x30;
const ROM_ENABLE = 0x1;
/** Clear of the BAR the session assigns at the start of the window. */
const ROM_BASE = MEM_WINDOW + 0x100000;

/** 3000 bytes behind a ROM signature: a 4 KiB ROM BAR. */
function romImage(): Buffer {
  const bytes = Buffer.alloc(3000);
  bytes.forEach((_, i) => {
    bytes[i] = (i * 29 + 3) & 0xff;
  });
  bytes[0] = 0x55;
  bytes[1] = 0xaa;
  return bytes;
}

describeWithQemu('QEMU expansion ROM', () => {
  test('sizes as 4 KiB, and reads the image (zeros after it) once enabled', async () => {
    const image = romImage();
    const served = serveInProcess(makeTempDir(), () =>
      new PciDevice({ vendorId: 0x1b36, deviceId: 0x0121, bars: [{ index: 0, size: 0x1000 }], expansionRom: image }),
    );
    const { qemu, dev } = await openSession({ deviceSocket: served.socketPath });

    await dev.write32(ROM_ADDRESS, 0xfffff800);
    expect(await dev.read32(ROM_ADDRESS)).toBe(0xfffff000);
    await dev.write32(ROM_ADDRESS, ROM_BASE | ROM_ENABLE);
    expect(await dev.read32(ROM_ADDRESS)).toBe((ROM_BASE | ROM_ENABLE) >>> 0);

    const read = await qemu.qtest.read(ROM_BASE, 4096);
    expect(read.subarray(0, 3000).equals(image)).toBe(true);
    expect(read.subarray(3000).equals(Buffer.alloc(1096))).toBe(true);
    expect(await qemu.qtest.readl(ROM_BASE)).toBe(image.readUInt32LE(0));

    await qemu.qtest.writel(ROM_BASE + 4, 0);
    expect(await qemu.qtest.readl(ROM_BASE + 4)).toBe(image.readUInt32LE(4));
    expect(served.errors).toEqual([]);
  });
});
