import { PciDevice, RegionAccessError, RegisterMap, type RegionHandler } from '../../lib';
import { rejection, serveAndConnect, u32 } from '../helpers';

const CONFIG = 7;
const base = { vendorId: 0x1b36, deviceId: 0x0130 };

/** Two device-specific registers at 0x40 in config space, and capabilities placed after them. */
class ConfigDevice extends PciDevice {
  readonly regs = new RegisterMap({
    mode: { offset: 0, width: 4, rw: 0xff, reset: 0x11 },
    serial: { offset: 4, width: 4, read: () => 0xc0ffee00 + this.serialReads++ },
  });
  serialReads = 0;
  constructor() {
    super({ ...base, pm: true, msi: { vectors: 1 }, configRegisters: [{ offset: 0x40, size: 8, handler: () => this.regs }] });
  }
}

describe('config-space registers', () => {
  test('the range answers reads and writes; capabilities are placed after it', async () => {
    const device = new ConfigDevice();
    const { client } = await serveAndConnect(device);
    expect(device.capabilityOffset('pm')).toBe(0x48);
    expect(await client.findCapability(0x01)).toBe(0x48);
    expect(await client.read32(CONFIG, 0x40)).toBe(0x11);
    await client.writeConfig(0x40, u32(0x1234));
    expect(device.regs.get('mode')).toBe(0x34);
    expect(await client.read32(CONFIG, 0x44)).toBe(0xc0ffee00);
    expect(await client.read32(CONFIG, 0x44)).toBe(0xc0ffee01);
    // One access over both registers and into the PM capability's header.
    const span = await client.readConfig(0x40, 10);
    expect(span.readUInt32LE(0)).toBe(0x34);
    expect(span.readUInt32LE(4)).toBe(0xc0ffee02);
    expect(span[8]).toBe(0x01); // PM capability ID
    await client.reset();
    expect(device.regs.get('mode')).toBe(0x11);
  });

  test('bytes outside every range and capability read as zeros and ignore writes; a read across a gap', async () => {
    const seen: Array<[string, number, number]> = [];
    const tail: RegionHandler = {
      read: (offset, data) => {
        seen.push(['read', offset, data.length]);
        data.fill(0xab);
      },
      write: (offset, data) => {
        seen.push(['write', offset, data.length]);
      },
    };
    const { client } = await serveAndConnect(new PciDevice({ ...base, configRegisters: [{ offset: 0xf0, size: 8, handler: tail }] }));
    expect(await client.read32(CONFIG, 0x80)).toBe(0);
    await client.writeConfig(0x80, u32(0xffffffff));
    expect(await client.read32(CONFIG, 0x80)).toBe(0);
    expect((await client.readConfig(0xec, 16)).toString('hex')).toBe(`00000000${'ab'.repeat(8)}00000000`);
    await client.writeConfig(0xf4, Buffer.from([1, 2]));
    expect(seen).toEqual([['read', 0, 8], ['write', 4, 2]]);
  });

  test('a handler that throws fails the access; the device keeps serving', async () => {
    let fail = true;
    const flaky: RegionHandler = {
      read: (offset, data) => {
        if (fail) {
          throw new Error('not ready');
        }
        data.fill(7);
      },
      write: () => {},
    };
    const { client, server } = await serveAndConnect(new PciDevice({ ...base, configRegisters: [{ offset: 0x40, size: 4, handler: flaky }] }));
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    const err = await rejection(client.read32(CONFIG, 0x40));
    expect(err).toBeInstanceOf(RegionAccessError);
    expect(err.code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual(['not ready']);
    fail = false;
    expect(await client.read32(CONFIG, 0x40)).toBe(0x07070707);
    expect(await client.read16(CONFIG, 0)).toBe(0x1b36);
  });

  test('bad ranges are refused in the description', () => {
    const handler: RegionHandler = { read: () => {}, write: () => {} };
    const make = (configRegisters: unknown, extra = {}): PciDevice => new PciDevice({ ...base, ...extra, configRegisters } as never);
    expect(() => make([{ offset: 0x3c, size: 4, handler }])).toThrow(/configRegisters\[0\]\.offset.*from 0x40/);
    expect(() => make([{ offset: 0x42, size: 4, handler }])).toThrow(/multiples of 4/);
    expect(() => make([{ offset: 0xfc, size: 8, handler }])).toThrow(/configRegisters\[0\]\.size/);
    expect(() => make([{ offset: 0x40, size: 8, handler }, { offset: 0x44, size: 4, handler }])).toThrow(/0x40 and 0x44 overlap/);
    expect(() => make([{ offset: 0x40, size: 4, handler: 5 }])).toThrow(/configRegisters\[0\]\.handler/);
    expect(() => make([{ offset: 0x40, size: 0xc0, handler }], { pm: true })).toThrow(/leave no room for the pm capability/);
  });
});
