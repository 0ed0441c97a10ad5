import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DeviceDescriptionError, PciDevice } from '../../lib';
import { serveAndConnect, socketPath, u32 } from '../helpers';

const ROM = 6;
const ROM_ADDRESS = 0x30;
const base = { vendorId: 0x1b36, deviceId: 0x0120 };

/** 3000 bytes: a ROM signature (0x55 0xaa) then a counting pattern. */
function romImage(length = 3000): Buffer {
  const bytes = Buffer.alloc(length);
  bytes.forEach((_, i) => {
    bytes[i] = (i * 13 + 7) & 0xff;
  });
  bytes[0] = 0x55;
  bytes[1] = 0xaa;
  return bytes;
}

describe('expansion ROM', () => {
  test('from a Buffer: a read-only region 6 of the next power of two, zeros after the image', async () => {
    const image = romImage();
    const { client } = await serveAndConnect(new PciDevice({ ...base, expansionRom: image }));
    const info = await client.getRegionInfo(ROM);
    expect(info.size).toBe(4096);
    expect(info.readable).toBe(true);
    expect(info.writable).toBe(false);
    expect((await client.readRegion(ROM, 0, 3000)).equals(image)).toBe(true);
    expect(await client.read32(ROM, 0)).toBe(image.readUInt32LE(0));
    expect((await client.readRegion(ROM, 2996, 8)).toString('hex')).toBe(`${image.subarray(2996).toString('hex')}00000000`);
    expect((await client.readRegion(ROM, 3000, 1096)).equals(Buffer.alloc(1096))).toBe(true);
  });

  test('writes are ignored, as on hardware', async () => {
    const image = romImage();
    const { client } = await serveAndConnect(new PciDevice({ ...base, expansionRom: image }));
    await client.write32(ROM, 0, 0);
    await client.writeRegion(ROM, 3000, Buffer.from('not rom'));
    expect((await client.readRegion(ROM, 0, 4096)).equals(Buffer.concat([image, Buffer.alloc(1096)]))).toBe(true);
  });

  test('the ROM BAR in config space: its size and the enable bit', async () => {
    const { client } = await serveAndConnect(new PciDevice({ ...base, expansionRom: romImage() }));
    expect(await client.read32(7, ROM_ADDRESS)).toBe(0);
    await client.writeConfig(ROM_ADDRESS, u32(0xffffffff));
    // Address bits 31:12 for 4 KiB, and the enable bit.
    expect(await client.read32(7, ROM_ADDRESS)).toBe(0xfffff001);
    await client.writeConfig(ROM_ADDRESS, u32(0xfebc0000));
    expect(await client.read32(7, ROM_ADDRESS)).toBe(0xfebc0000);
  });

  test('from a file, read when the device is constructed; the smallest ROM is 2 KiB', async () => {
    const path = join(socketPath('rom'), '..', 'option.rom');
    const image = romImage(100);
    writeFileSync(path, image);
    const device = new PciDevice({ ...base, expansionRom: path });
    writeFileSync(path, Buffer.alloc(100)); // changing the file later changes nothing
    const { client } = await serveAndConnect(device);
    expect((await client.getRegionInfo(ROM)).size).toBe(2048);
    expect((await client.readRegion(ROM, 0, 100)).equals(image)).toBe(true);
    await client.writeConfig(ROM_ADDRESS, u32(0xffffffff));
    expect(await client.read32(7, ROM_ADDRESS)).toBe(0xfffff801);
  });

  test('a device without a ROM has no region 6 and a ROM BAR that stays zero', async () => {
    const { client } = await serveAndConnect(new PciDevice(base));
    expect((await client.getRegionInfo(ROM)).size).toBe(0);
    await client.writeConfig(ROM_ADDRESS, u32(0xffffffff));
    expect(await client.read32(7, ROM_ADDRESS)).toBe(0);
  });

  test('a missing file, an empty image or another type is refused', () => {
    const missing = join(socketPath('rom'), '..', 'missing.rom');
    expect(() => new PciDevice({ ...base, expansionRom: missing })).toThrow(
      new DeviceDescriptionError('expansionRom', `cannot read ${missing}: ENOENT`),
    );
    expect(() => new PciDevice({ ...base, expansionRom: new Uint8Array(0) })).toThrow(/expansionRom.*1 byte to 2 GiB, not 0/);
    expect(() => new PciDevice({ ...base, expansionRom: 42 as never })).toThrow(/expansionRom.*Uint8Array or a file path/);
  });
});
