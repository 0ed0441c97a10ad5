import { AccessRuleError, PciDevice, RegionAccessError } from '../../lib';
import { rejection, serveAndConnect } from '../helpers';

/** BAR 0: 4-byte aligned accesses only; BAR 1: 2 or 4 bytes anywhere. */
class StrictDevice extends PciDevice {
  readonly seen: Array<[number, number]> = [];
  constructor() {
    const logger = {
      read: (offset: number, data: Buffer): void => {
        this.seen.push([offset, data.length]);
      },
      write: (offset: number, data: Buffer): void => {
        this.seen.push([offset, data.length]);
      },
    };
    super({
      vendorId: 0x1b36, deviceId: 0x0114,
      bars: [
        { index: 0, size: 0x100, handler: logger, access: { sizes: [4], aligned: true } },
        { index: 1, size: 0x100, handler: logger, access: { sizes: [2, 4] } },
        { index: 2, size: 0x100, handler: logger, access: { aligned: true } },
      ],
    });
  }
}

describe('BAR access rules', () => {
  test('accesses that keep the rules reach the handler', async () => {
    const device = new StrictDevice();
    const { client } = await serveAndConnect(device);
    await client.read32(0, 8);
    await client.write32(0, 0xfc, 1);
    await client.read16(1, 3);
    await client.write32(1, 5, 0);
    await client.read64(2, 8);
    await client.readBar(2, 0x10, 16);
    expect(device.seen).toEqual([[8, 4], [0xfc, 4], [3, 2], [5, 4], [8, 8], [0x10, 16]]);
  });

  test('others get EINVAL before the handler runs, a warning is logged, and the device keeps serving', async () => {
    const device = new StrictDevice();
    const { client, server } = await serveAndConnect(device);
    const errors: Error[] = [];
    const warnings: string[] = [];
    server.on('error', (err) => errors.push(err));
    server.on('log', (level, message) => warnings.push(message));
    const refused = [
      client.read16(0, 8), // wrong size
      client.write32(0, 2, 0), // misaligned
      client.read8(1, 0), // wrong size
      client.readBar(1, 0, 16), // larger than any size
      client.read32(2, 6), // misaligned
    ];
    for (const access of refused) {
      const err = await rejection(access);
      expect(err).toBeInstanceOf(RegionAccessError);
      expect(err.code).toBe('EINVAL');
    }
    expect(device.seen).toEqual([]);
    expect(errors).toEqual([]);
    expect(warnings).toContain('BAR 0 refused 2 bytes at 0x8: the BAR takes accesses of 4 bytes');
    expect(warnings).toContain('BAR 0 refused 4 bytes at 0x2: the BAR takes only naturally aligned accesses');
    expect(warnings).toContain('BAR 1 refused 16 bytes at 0x0: the BAR takes accesses of 2, 4 bytes');
    await client.read32(0, 4);
    expect(device.seen).toEqual([[4, 4]]);
  });

  test('AccessRuleError carries EINVAL', () => {
    const err = new AccessRuleError(3, 0x10, 2, 'why');
    expect(err.errno).toBe(22);
    expect(err.message).toBe('BAR 3 refused 2 bytes at 0x10: why');
  });

  test('bad rules are refused in the description', () => {
    const base = { vendorId: 0x1b36, deviceId: 0x0115 };
    const bar = (access: unknown): unknown => ({ ...base, bars: [{ index: 0, size: 16, access }] });
    expect(() => new PciDevice(bar({ sizes: [3] }) as never)).toThrow(/bars\[0\]\.access\.sizes.*1, 2, 4 or 8 bytes, not 3/);
    expect(() => new PciDevice(bar({ sizes: [] }) as never)).toThrow(/non-empty array/);
    expect(() => new PciDevice(bar({ aligned: 'yes' }) as never)).toThrow(/bars\[0\]\.access\.aligned.*true or false/);
    expect(() => new PciDevice(bar({ size: [4] }) as never)).toThrow(/bars\[0\]\.access\.size.*is not a field/);
    expect(() => new PciDevice(bar(4) as never)).toThrow(/bars\[0\]\.access.*must be an object/);
  });
});
