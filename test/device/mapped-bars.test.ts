/**
 * Mapped BARs: shared memory the client maps, served with no message, the
 * rest of the BAR trapped to the handler; their descriptions, reset and
 * migration.
 */
import { fstatSync } from 'node:fs';

import {
  DeviceDescriptionError,
  MigrationStreamError,
  PciDevice,
  RegisterMap,
  type DeviceDescription,
} from '../../lib';
import { migrate, VfioUserClient } from '../../lib/client';
import { os } from '../../lib/native';
import { connect, serve, serveAndConnect } from '../helpers';
import { descriptionError } from '../support/description-error';

const PAGE = os.pageSize;

/** BAR0: registers in the first page, a mailbox page mapped after them; BAR2: all mapped. */
class MailboxCard extends PciDevice {
  readonly regs = new RegisterMap({
    id: { offset: 0, width: 4, reset: 0x4d42_0001 },
    doorbell: { offset: 4, width: 4, rw: 0xffffffff },
  });

  constructor(extra: Partial<DeviceDescription> = {}) {
    super({
      vendorId: 0x1b36,
      deviceId: 0x11a0,
      bars: [
        { index: 0, size: 4 * PAGE, mapped: [{ offset: PAGE, size: PAGE }, { offset: 3 * PAGE, size: PAGE }] },
        { index: 2, size: 2 * PAGE, mapped: true },
      ],
      ...extra,
    });
    this.setBarHandler(0, this.regs);
  }
}

function expectDescriptionError(description: DeviceDescription, field: string, message: RegExp): void {
  descriptionError(() => new PciDevice(description), field, message);
}

describe('mapped BARs through a client that maps them', () => {
  test('the region info offers the fd and the sparse areas; the fd is sealed and as large as the BAR', async () => {
    const { client } = await serveAndConnect(new MailboxCard());
    const info = await client.getRegionInfo(0);
    try {
      expect(info.mappable).toBe(true);
      expect(info.sparseAreas).toEqual([{ offset: PAGE, size: PAGE }, { offset: 3 * PAGE, size: PAGE }]);
      expect(info.fd).toBeDefined();
      expect(fstatSync(info.fd!).size).toBe(4 * PAGE);
    } finally {
      os.close(info.fd!);
    }
    const whole = await client.getRegionInfo(2);
    os.close(whole.fd!);
    expect(whole.sparseAreas).toEqual([{ offset: 0, size: 2 * PAGE }]);
  });

  test('accesses through the mapping reach the device memory with zero messages', async () => {
    const device = new MailboxCard();
    const { server, client } = await serveAndConnect(device);
    const bar0 = await client.mapRegion(0);
    const bar2 = await client.mapRegion(2);
    expect(bar0.areas.map((a) => [a.offset, a.size])).toEqual([[PAGE, PAGE], [3 * PAGE, PAGE]]);

    bar0.view(PAGE + 8, 4).writeUInt32LE(0xcafe_f00d);
    expect(device.barMemory(0).readUInt32LE(PAGE + 8)).toBe(0xcafe_f00d);
    device.barMemory(0).writeUInt32LE(0x1234_5678, 3 * PAGE + 0x10);
    expect(bar0.view(3 * PAGE + 0x10, 4).readUInt32LE()).toBe(0x1234_5678);
    bar2.view(2 * PAGE - 8, 8).writeBigUInt64LE(0x0102_0304_0506_0708n);
    expect(device.barMemory(2).readBigUInt64LE(2 * PAGE - 8)).toBe(0x0102_0304_0506_0708n);

    expect(server.mappedAccessMessages(0)).toBe(0);
    expect(server.mappedAccessMessages(2)).toBe(0);
    // The registers are still trapped, to the handler.
    expect(await client.read32(0, 0)).toBe(0x4d42_0001);
    await client.write32(0, 4, 7);
    expect(device.regs.get('doorbell')).toBe(7);
    expect(server.mappedAccessMessages(0)).toBe(0);

    expect(() => bar0.view(0, 4)).toThrow(/not inside one mapped area/);
    expect(() => bar0.view(2 * PAGE - 2, 4)).toThrow(/not inside one mapped area/);
    bar0.unmap();
    bar0.unmap();
    expect(bar0.areas[0].memory.length).toBe(0); // detached
    expect(() => bar0.view(PAGE, 4)).toThrow(/unmapped/);
    bar2.unmap();
  });

  test('trapped accesses to the mapped ranges use the same memory, and are counted', async () => {
    const device = new MailboxCard();
    const { server, client } = await serveAndConnect(device);
    await client.write32(0, PAGE + 4, 0xa5a5_5a5a);
    expect(device.barMemory(0).readUInt32LE(PAGE + 4)).toBe(0xa5a5_5a5a);
    device.barMemory(2).write('hello', 100);
    expect((await client.readRegion(2, 100, 5)).toString()).toBe('hello');
    expect(server.mappedAccessMessages(0)).toBe(1);
    expect(server.mappedAccessMessages(2)).toBe(1);

    // One access across the edge: its trapped half reaches the handler, the other the memory.
    device.barMemory(0).writeUInt32LE(0x4433_2211, PAGE);
    const across = await client.readRegion(0, PAGE - 4, 8);
    expect(across.readUInt32LE(0)).toBe(0); // the register map has nothing at PAGE - 4
    expect(across.readUInt32LE(4)).toBe(0x4433_2211);
    await client.writeRegion(0, PAGE - 2, Buffer.from([1, 2, 3, 4]));
    expect(device.barMemory(0).subarray(PAGE, PAGE + 2)).toEqual(Buffer.from([3, 4]));
    expect(server.mappedAccessMessages(0)).toBe(3);
    expect(() => server.mappedAccessMessages(1)).toThrow(RangeError);
  });

  test('a reset keeps the memory (the device clears it in onReset if it wants); a new server serves the same memory', async () => {
    const device = new MailboxCard();
    const server = serve(device);
    const client = await connect(server);
    const bar2 = await client.mapRegion(2);
    bar2.view(0, 4).writeUInt32LE(0xdead_beef);
    await client.reset();
    expect(device.barMemory(2).readUInt32LE(0)).toBe(0xdead_beef);
    await client.close();
    await server.close();

    const again = await connect(serve(device));
    const mapping = await again.mapRegion(2);
    expect(mapping.view(0, 4).readUInt32LE()).toBe(0xdead_beef);
    // The old mapping is still the same memory.
    mapping.view(4, 1)[0] = 0x42;
    expect(bar2.view(4, 1)[0]).toBe(0x42);
    mapping.unmap();
    bar2.unmap();
  });

  test('a BAR that is not mapped has no memory, and the client cannot map it', async () => {
    const device = new PciDevice({ vendorId: 1, deviceId: 2, bars: [{ index: 1, size: PAGE }] });
    expect(() => device.barMemory(1)).toThrow(DeviceDescriptionError);
    const { client } = await serveAndConnect(device);
    await expect(client.mapRegion(1)).rejects.toThrow(/region 1 is not mappable/);
  });
});

describe('mapped BARs in migration', () => {
  class MigratableCard extends MailboxCard {
    constructor() {
      super({ migration: true });
    }
  }

  test('the memory goes with the device, trapped registers too', async () => {
    const source = new MigratableCard();
    const destination = new MigratableCard();
    const a = await connect(serve(source));
    const b = await connect(serve(destination));
    const map = await a.mapRegion(0);
    map.view(PAGE, 16).fill(0x5c);
    source.barMemory(2).writeUInt32LE(0x0bad_cafe, 2 * PAGE - 4);
    await a.write32(0, 4, 9);

    await migrate(a, b);
    expect(destination.barMemory(0).subarray(PAGE, PAGE + 16)).toEqual(Buffer.alloc(16, 0x5c));
    expect(destination.barMemory(2).readUInt32LE(2 * PAGE - 4)).toBe(0x0bad_cafe);
    expect(destination.regs.get('doorbell')).toBe(9);
    map.unmap();
  });

  test('a destination that maps other BARs refuses the stream, and keeps serving', async () => {
    const card = (mappedBar: number): PciDevice =>
      new PciDevice({
        vendorId: 0x1b36,
        deviceId: 0x11a0,
        bars: [0, 2].map((index) => ({ index, size: 4 * PAGE, ...(index === mappedBar ? { mapped: true as const } : {}) })),
        migration: true,
      });
    const a = await connect(serve(card(2)));
    const server = serve(card(0));
    const b = await connect(server);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    await expect(migrate(a, b)).rejects.toThrow();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(MigrationStreamError);
    expect(errors[0].message).toMatch(/memory of mapped BAR 2, which is not mapped here/);
    const mapping = await b.mapRegion(0);
    expect(mapping.view(0, 4).readUInt32LE()).toBe(0);
    mapping.unmap();
    expect(b).toBeInstanceOf(VfioUserClient);
  });
});

describe('mapped BAR descriptions', () => {
  const base = { vendorId: 1, deviceId: 2 };

  test.each<[string, DeviceDescription, string, RegExp]>([
    ['an I/O BAR', { ...base, bars: [{ index: 0, size: 256, memory: false, mapped: true }] }, 'bars[0].mapped', /I\/O BAR cannot be mapped/],
    ['a BAR smaller than a page', { ...base, bars: [{ index: 0, size: 16, mapped: true }] }, 'bars[0].mapped', /at least a page/],
    ['an empty list', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [] }] }, 'bars[0].mapped', /non-empty array/],
    ['false', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: false as unknown as true }] }, 'bars[0].mapped', /must be true or/],
    ['an unaligned offset', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: 8, size: PAGE }] }] }, 'bars[0].mapped[0]', /multiples of the page size/],
    ['an unaligned size', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: 0, size: 100 }] }] }, 'bars[0].mapped[0]', /multiples of the page size/],
    ['a range past the end', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: PAGE, size: 2 * PAGE }] }] }, 'bars[0].mapped[0].size', /must be an integer/],
    ['a range outside', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: 2 * PAGE, size: PAGE }] }] }, 'bars[0].mapped[0].offset', /must be an integer/],
    ['an unknown field', { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: 0, size: PAGE, length: 1 } as never] }] }, 'bars[0].mapped[0].length', /is not a field/],
    [
      'overlapping ranges',
      { ...base, bars: [{ index: 0, size: 4 * PAGE, mapped: [{ offset: PAGE, size: 2 * PAGE }, { offset: 2 * PAGE, size: PAGE }] }] },
      'bars[0].mapped',
      /overlap/,
    ],
    [
      'the MSI-X table in a mapped range',
      { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: true }], msix: { vectors: 4, bar: 0, tableOffset: 0 } },
      'msix.tableOffset',
      /mapped range/,
    ],
    [
      'the MSI-X PBA in a mapped range',
      { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: PAGE, size: PAGE }] }], msix: { vectors: 4, bar: 0, tableOffset: 0, pbaOffset: PAGE } },
      'msix.pbaOffset',
      /mapped range/,
    ],
    [
      'a register in a mapped range',
      { ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: PAGE, size: PAGE }], handler: new RegisterMap({ late: { offset: PAGE + 4, width: 4 } }) }] },
      'bars (BAR 0).handler.registers.late',
      /mapped range/,
    ],
  ])('refused: %s', (_name, description, field, message) => {
    expectDescriptionError(description, field, message);
  });

  test('a mapped BAR too large for this process to map is refused with the field named', () => {
    expectDescriptionError({ ...base, bars: [{ index: 0, size: 2 ** 52, bits64: true, mapped: true }] }, 'bars (BAR 0).mapped', /shared memory cannot be made: E/);
  });

  test('the MSI-X table beside a mapped range is fine, and still the library\'s', async () => {
    const device = new PciDevice({ ...base, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: PAGE, size: PAGE }] }], msix: { vectors: 2, bar: 0, tableOffset: 0 } });
    const { server, client } = await serveAndConnect(device);
    await client.write32(0, 0, 0xfee0_0000); // vector 0's address, in the library's table
    expect(await client.read32(0, 0)).toBe(0xfee0_0000);
    expect(server.mappedAccessMessages(0)).toBe(0);
  });
});

describe('the trapped part of a mapped BAR', () => {
  test('a fault in its handler is named as any BAR handler\'s', async () => {
    // A read result that is no data: the server's own HandlerError.
    const handler = { read: () => 'oops' as unknown as void, write: (): void => undefined };
    const device = new PciDevice({ vendorId: 0x1b36, deviceId: 0x11a1, bars: [{ index: 0, size: 2 * PAGE, mapped: [{ offset: PAGE, size: PAGE }], handler }] });
    const { server, client } = await serveAndConnect(device);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    await expect(client.read32(0, 4)).rejects.toMatchObject({ code: 'EIO' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ handler: 'BAR 0 read handler', code: 'EIO' });
    expect(server.mappedAccessMessages(0)).toBe(0);
  });
});
