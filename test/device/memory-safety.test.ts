/**
 * No client request makes a TypeScript device touch memory it should not:
 * its handlers only ever see accesses inside their BAR, and DMA reaches only
 * what the client mapped, with no more permission than the client granted.
 */
import { readFileSync } from 'node:fs';

import { PciDevice, VfioUserError, type RegionHandler } from '../../lib';
import { Command } from '../../lib/client';
import { errorLike } from '../error-like';
import { regionAccess, rejection, serveAndConnect } from '../helpers';

const BAR_SIZE = 0x100;

/** Records every access and fails the test if one reaches past its BAR. */
class Guarded extends PciDevice {
  readonly accesses: Array<[number, number, number]> = [];
  readonly outside: Array<[number, number, number]> = [];
  readonly memory = [Buffer.alloc(BAR_SIZE), Buffer.alloc(BAR_SIZE)];

  constructor() {
    const guard = (bar: number): RegionHandler => ({
      read: (offset, data) => {
        this.check(bar, offset, data.length);
        this.memory[bar].copy(data, 0, offset, offset + data.length);
      },
      write: (offset, data) => {
        this.check(bar, offset, data.length);
        data.copy(this.memory[bar], offset);
      },
    });
    super({
      vendorId: 0x1b36,
      deviceId: 0x0100,
      bars: [
        { index: 0, size: BAR_SIZE, handler: guard(0) },
        { index: 1, size: BAR_SIZE, handler: guard(1) },
      ],
      msix: { vectors: 4, bar: 2 },
    });
  }

  private check(bar: number, offset: number, length: number): void {
    this.accesses.push([bar, offset, length]);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > BAR_SIZE) {
      this.outside.push([bar, offset, length]);
    }
  }
}

/** A REGION_WRITE_MULTI payload: `count` says how many entries, `entries` are what comes. */
function multi(count: bigint, entries: Array<[number, bigint, number]>): Buffer {
  const body = Buffer.alloc(8 + 24 * entries.length);
  body.writeBigUInt64LE(count, 0);
  entries.forEach(([region, offset, size], i) => {
    regionAccess(region, offset, size).copy(body, 8 + 24 * i);
    body.fill(0xab, 8 + 24 * i + 16, 8 + 24 * i + 16 + Math.min(size, 8));
  });
  return body;
}

const U64_MAX = 0xffffffffffffffffn;

describe('region accesses stay inside the BAR', () => {
  const refused: Array<[string, number, Buffer]> = [
    ['a read that ends one byte past the BAR', Command.REGION_READ, regionAccess(0, BigInt(BAR_SIZE - 3), 4)],
    ['a read at the BAR size', Command.REGION_READ, regionAccess(0, BigInt(BAR_SIZE), 1)],
    ['a write that ends past the BAR', Command.REGION_WRITE, regionAccess(1, BigInt(BAR_SIZE - 1), 2, Buffer.alloc(2))],
    ['a read whose offset + count wraps past 2^64', Command.REGION_READ, regionAccess(0, U64_MAX - 1n, 4)],
    ['a write whose offset + count wraps past 2^64', Command.REGION_WRITE, regionAccess(0, U64_MAX, 4, Buffer.alloc(4))],
    ['an offset past 2^53 (not a safe JS number)', Command.REGION_READ, regionAccess(0, 1n << 60n, 4)],
    ['a count of 2^32 - 1', Command.REGION_READ, regionAccess(0, 0n, 0xffffffff)],
    ['a count past the BAR, under the message limit', Command.REGION_READ, regionAccess(1, 0n, BAR_SIZE + 1)],
    ['a write count larger than the data sent', Command.REGION_WRITE, regionAccess(0, 0n, 64, Buffer.alloc(8))],
    ['a write count smaller than the data sent', Command.REGION_WRITE, regionAccess(0, 0n, 4, Buffer.alloc(8))],
    ['a region that does not exist', Command.REGION_READ, regionAccess(9, 0n, 4)],
    ['a BAR that was not set up', Command.REGION_READ, regionAccess(4, 0n, 4)],
    ['past the end of the MSI-X table BAR', Command.REGION_READ, regionAccess(2, 0xffcn, 8)],
    ['write-multi: an entry past the BAR', Command.REGION_WRITE_MULTI, multi(2n, [[0, 0n, 4], [0, BigInt(BAR_SIZE - 2), 4]])],
    ['write-multi: an entry whose offset wraps', Command.REGION_WRITE_MULTI, multi(1n, [[1, U64_MAX - 2n, 8]])],
    ['write-multi: an entry of 9 bytes', Command.REGION_WRITE_MULTI, multi(1n, [[0, 0n, 9]])],
    ['write-multi: more entries announced than sent', Command.REGION_WRITE_MULTI, multi(3n, [[0, 0n, 4]])],
    ['write-multi: a count that overflows the size', Command.REGION_WRITE_MULTI, multi(2n + (1n << 61n), [[0, 0n, 4], [0, 4n, 4]])],
  ];

  test.each(refused)('%s is refused with EINVAL before any handler runs', async (_what, command, payload) => {
    const device = new Guarded();
    const { client } = await serveAndConnect(device);
    await client.writeBar(0, 0, Buffer.from('intact'));
    device.accesses.length = 0;
    expect((await rejection(client.request(command, payload))).code).toBe('EINVAL');
    expect(device.accesses).toEqual([]);
    expect((await client.readBar(0, 0, 6)).toString()).toBe('intact');
    expect(device.outside).toEqual([]);
  });

  test('every size at every offset up to the last byte reaches the handler inside the BAR', async () => {
    const device = new Guarded();
    const { client } = await serveAndConnect(device);
    for (const size of [1, 2, 3, 4, 8, 64, 65, BAR_SIZE]) {
      for (const offset of [0, 1, BAR_SIZE - size - 1, BAR_SIZE - size]) {
        if (offset < 0 || offset + size > BAR_SIZE) {
          continue;
        }
        await client.writeBar(1, offset, Buffer.alloc(size, size));
        expect(await client.readBar(1, offset, size)).toEqual(Buffer.alloc(size, size));
        expect((await rejection(client.readBar(1, offset + 1 + (BAR_SIZE - size - offset), size))).code).toBe('EINVAL');
      }
    }
    expect(device.outside).toEqual([]);
    expect(device.accesses.length).toBeGreaterThan(0);
  });
});

/** Lines of /proc/self/maps that map the memfd of the client's guest memory at `iova`. */
function mapsOf(iova: number): string[] {
  const name = `vfio-user-guest-0x${iova.toString(16)}`;
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes(name));
}

describe('DMA reaches only what the client mapped, as the client allowed', () => {
  test('a read-only mapping: no view, no writes, copies only; the memory itself is mapped read-only', async () => {
    const device = new Guarded();
    const { client } = await serveAndConnect(device);
    const guest = await client.mapDma({ iova: 0x40000, size: 0x1000, writable: false });
    guest.write(0x40010, Buffer.from('guest data'));

    const [mapping] = device.dma.mappings;
    expect(mapping).toMatchObject({ iova: 0x40000, length: 0x1000, readable: true, writable: false, mapped: true });
    expect(device.dma.readSync(0x40010, 10).toString()).toBe('guest data');
    const attempts = [
      () => device.dma.view(0x40000, 16),
      () => device.dma.writeSync(0x40010, Buffer.from('device')),
    ];
    for (const attempt of attempts) {
      const err = (() => {
        try {
          attempt();
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(VfioUserError);
      expect(err).toMatchObject({ code: 'EACCES', reason: 'read-only' });
    }
    expect(guest.read(0x40010, 10).toString()).toBe('guest data');
    // Two mappings of the memfd in this process: the client's, read-write,
    // and the server's, with the protection the client granted.
    const perms = mapsOf(0x40000).map((line) => line.split(/\s+/)[1]).sort();
    expect(perms).toEqual(['r--s', 'rw-s']);
  });

  test('a mapping with neither read nor write gives nothing at all', async () => {
    const device = new Guarded();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x50000, size: 0x1000, readable: false, writable: false });
    expect(device.dma.mappings[0]).toMatchObject({ readable: false, writable: false });
    expect(() => device.dma.readSync(0x50000, 4)).toThrow(errorLike({ code: 'EACCES' }));
    expect(() => device.dma.view(0x50000, 4)).toThrow(errorLike({ code: 'EACCES' }));
    expect(() => device.dma.writeSync(0x50000, Buffer.alloc(4))).toThrow(errorLike({ code: 'EACCES' }));
    await expect(device.dma.read(0x50000, 4)).rejects.toMatchObject({ code: 'EACCES' });
    expect(mapsOf(0x50000).map((line) => line.split(/\s+/)[1]).sort()).toEqual(['---s', 'rw-s']);
  });

  test('ranges outside, across or after mappings fail with EFAULT; bad numbers with EINVAL', async () => {
    const device = new Guarded();
    const { client } = await serveAndConnect(device);
    const a = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    await client.mapDma({ iova: 0x11000, size: 0x1000 });
    const efault = [
      () => device.dma.readSync(0xf000, 4), // before
      () => device.dma.view(0x10ffe, 4), // a view across two adjacent mappings
      () => device.dma.view(0x11ffc, 8), // past the end
      () => device.dma.readSync(0x11ffc, 8), // past the end
      () => device.dma.writeSync(0x12000, Buffer.alloc(1)), // after
      () => device.dma.readSync(0x10000, 2 ** 40), // huge
      () => device.dma.readSync(Number.MAX_SAFE_INTEGER - 1, 1),
    ];
    for (const attempt of efault) {
      expect(attempt).toThrow(errorLike({ code: 'EFAULT' }));
    }
    const einval = [
      () => device.dma.readSync(0x10000, -1),
      () => device.dma.readSync(0x10000, 2 ** 53),
      () => device.dma.readSync(0x10000, 1.5),
      () => device.dma.readSync(0x10000, NaN),
      () => device.dma.view(-0x10, 0x20),
      () => device.dma.readSync(0x10000 + 0.5, 4),
      () => device.dma.writeSync(-1, Buffer.alloc(1)),
    ];
    for (const attempt of einval) {
      expect(attempt).toThrow(errorLike({ code: 'EINVAL' }));
    }
    expect(device.dma.readSync(0x10ffe, 4)).toHaveLength(4); // a copy may span adjacent mappings
    const view = device.dma.view(0x10000, 16);
    await client.unmapDma(a);
    // The unmapped range is gone, and the old view with it: empty, not dangling.
    expect(() => device.dma.readSync(0x10000, 4)).toThrow(errorLike({ code: 'EFAULT' }));
    expect(view.length).toBe(0);
    expect(device.dma.readSync(0x11000, 4)).toHaveLength(4);
  });
});
