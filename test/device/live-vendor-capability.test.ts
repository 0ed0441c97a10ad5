/**
 * A vendor-specific capability with live contents: the library keeps its
 * header and links it into the list, the device's handler answers the rest
 * as it is read and written. Driven through the client.
 */
import { DeviceDescriptionError, PciDevice, RegionAccessError, RegisterMap, type RegionHandler } from '../../lib';
import { rejection, serveAndConnect, u32 } from '../helpers';

const CONFIG = 7;
const VENDOR = 0x09;
const PM = 0x01;

/** A card whose vendor capability shows a tick counter and takes a command. */
class StatusCard extends PciDevice {
  ticks = 0;
  commands: number[] = [];
  readonly status = new RegisterMap({
    ticks: { offset: 4, width: 4, read: () => ++this.ticks },
    command: { offset: 8, width: 4, rw: true, write: ({ value }) => { this.commands.push(value); } },
  });
  constructor() {
    super({
      vendorId: 0x1b36,
      deviceId: 0x0132,
      pm: true,
      vendorCapabilities: [Uint8Array.of(0xaa, 0xbb), { length: 12, handler: () => this.status }],
    });
  }
}

/** Offsets of every capability with `id`, walking the list as a driver does. */
async function capabilityOffsets(read8: (offset: number) => Promise<number>, id: number): Promise<number[]> {
  const found: number[] = [];
  for (let at = await read8(0x34); at !== 0; at = await read8(at + 1)) {
    if ((await read8(at)) === id) {
      found.push(at);
    }
  }
  return found;
}

describe('a live vendor capability', () => {
  test('its contents come from the handler at each read; the header is the library\'s and linked', async () => {
    const device = new StatusCard();
    const { client } = await serveAndConnect(device);
    const read8 = (offset: number): Promise<number> => client.read8(CONFIG, offset);
    const [fixed, live] = await capabilityOffsets(read8, VENDOR);
    expect(fixed).toBeDefined();
    expect(live).toBeDefined();
    expect(await capabilityOffsets(read8, PM)).toHaveLength(1);
    expect([...(await client.readConfig(live, 3))]).toEqual([VENDOR, await read8(live + 1), 12]);
    expect(await client.read32(CONFIG, live + 4)).toBe(1);
    expect(await client.read32(CONFIG, live + 4)).toBe(2);
    await client.writeConfig(live + 8, u32(0xc0de));
    expect(device.commands).toEqual([0xc0de]);
    expect(await client.read32(CONFIG, live + 8)).toBe(0xc0de);
    // The fixed one next to it keeps its bytes.
    expect([...(await client.readConfig(fixed + 3, 2))]).toEqual([0xaa, 0xbb]);
  });

  test('writes to its header are ignored, so the list stays whole', async () => {
    const device = new StatusCard();
    const { client } = await serveAndConnect(device);
    const read8 = (offset: number): Promise<number> => client.read8(CONFIG, offset);
    const [, live] = await capabilityOffsets(read8, VENDOR);
    const header = await client.readConfig(live, 3);
    await client.writeConfig(live, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect(await client.readConfig(live, 3)).toEqual(header);
    // The byte after the header is the handler's (a register map reads 0 there).
    expect(await read8(live + 3)).toBe(0);
    expect(await capabilityOffsets(read8, VENDOR)).toHaveLength(2);
    expect(device.status.get('command')).toBe(0);
  });

  test('placed around config registers, at an offset the device knows', async () => {
    const regs = new RegisterMap({ id: { offset: 0, width: 4, reset: 0x600d } });
    const live = new RegisterMap({ value: { offset: 4, width: 4, reset: 0x1234 } });
    const device = new PciDevice({
      vendorId: 0x1b36,
      deviceId: 0x0133,
      configRegisters: [{ offset: 0x40, size: 4, handler: regs }],
      vendorCapabilities: [{ length: 8, handler: live }],
    });
    const { client } = await serveAndConnect(device);
    expect(device.capabilityOffset('vendor')).toBe(0x44);
    expect(await client.findCapability(VENDOR)).toBe(0x44);
    expect(await client.read32(CONFIG, 0x40)).toBe(0x600d);
    expect(await client.read32(CONFIG, 0x48)).toBe(0x1234);
  });

  test('a handler that throws gets the client an error reply, and the device serves on', async () => {
    let fail = true;
    const handler: RegionHandler = {
      read: (_offset, data) => {
        if (fail) {
          throw new Error('status unavailable');
        }
        data.fill(7);
      },
      write: () => undefined,
    };
    const device = new PciDevice({ vendorId: 0x1b36, deviceId: 0x0134, vendorCapabilities: [{ length: 8, handler }] });
    const { client, server } = await serveAndConnect(device);
    const errors: Error[] = [];
    server.on('error', (err: Error) => errors.push(err));
    const at = (await client.findCapability(VENDOR))!;
    expect(await rejection(client.read32(CONFIG, at + 4))).toBeInstanceOf(RegionAccessError);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/status unavailable/)]);
    fail = false;
    expect(await client.read32(CONFIG, at + 4)).toBe(0x07070707);
  });

  const handler: RegionHandler = { read: () => undefined, write: () => undefined };
  test.each<[unknown, RegExp]>([
    [{ length: 3, handler }, /vendorCapabilities\[0\]\.length: must be an integer from 0x4 to 0xff/],
    [{ length: 256, handler }, /vendorCapabilities\[0\]\.length: must be an integer from 0x4 to 0xff/],
    [{ length: 8 }, /vendorCapabilities\[0\]\.handler: must have read and write methods/],
    [{ length: 8, handler: { read: () => undefined } }, /vendorCapabilities\[0\]\.handler: must have read and write methods/],
    [{ length: 8, handler: () => new RegisterMap({}), size: 4 }, /vendorCapabilities\[0\]/],
    ['bytes', /vendorCapabilities\[0\]/],
  ])('refused: %j', (entry, message) => {
    const description = { vendorId: 0x1b36, deviceId: 0x0135, vendorCapabilities: [entry] };
    // @ts-expect-error -- descriptions a type checker would refuse, as plain JavaScript may pass them
    const make = (): PciDevice => new PciDevice(description);
    expect(make).toThrow(DeviceDescriptionError);
    expect(make).toThrow(message);
  });
});
