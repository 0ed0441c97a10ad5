/**
 * Doorbells served to a client: GET_REGION_IO_FDS lists their eventfds,
 * kicks reach onDoorbell counted, and a client that writes them with
 * REGION_WRITE (as QEMU 11 does) rings them the same way.
 */
import { closeSync, readdirSync } from 'node:fs';

import { Command, migrate, VfioUserClient, VfioUserError } from '../../lib/client';
import { IoeventfdFlag, MemoryRegion, PciDevice, RegisterMap, type Doorbell, type RegionHandler } from '../../lib';
import { connect, rejection, serve, serveAndConnect, until } from '../helpers';

/** A handler that records the writes that reach it. */
class RecordingRegion extends MemoryRegion {
  readonly writes: Array<[number, number]> = [];
  override write(offset: number, data: Buffer): void {
    this.writes.push([offset, data.length]);
    super.write(offset, data);
  }
}

/** A NIC-like device: a TX doorbell, two queue doorbells sharing a notify register, one in an I/O BAR. */
class DoorbellDevice extends PciDevice {
  readonly rings: Array<[string, number]> = [];
  failNext = false;
  /** @param bar0 - BAR 0's handler; null: none */
  constructor(readonly bar0: RegionHandler | null = new RecordingRegion(0x1000)) {
    super({
      vendorId: 0x1b36,
      deviceId: 0x0101,
      bars: [
        { index: 0, size: 0x1000, handler: bar0 ?? undefined },
        { index: 1, size: 0x100 },
        { index: 2, size: 16, memory: false },
      ],
      msix: { vectors: 2, bar: 0, tableOffset: 0x800 },
      doorbells: [
        { name: 'tx', bar: 0, offset: 0x100, size: 4 },
        { name: 'queue 0', bar: 0, offset: 0x200, size: 2, datamatch: 0 },
        { name: 'queue 1', bar: 0, offset: 0x200, size: 2, datamatch: 1n },
        { name: 'legacy', bar: 2, offset: 4, size: 1 },
      ],
    });
  }

  override onDoorbell(doorbell: Doorbell, kicks: number): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error(`${doorbell.name} jammed`);
    }
    this.rings.push([doorbell.name, kicks]);
  }

  kicksOf(name: string): number {
    return this.rings.filter(([n]) => n === name).reduce((sum, [, k]) => sum + k, 0);
  }
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('GET_REGION_IO_FDS', () => {
  test('lists each doorbell of a region with its offset, size, flags and datamatch, one eventfd each', async () => {
    const { client } = await serveAndConnect(new DoorbellDevice());
    const bar0 = await client.getRegionIoFds(0);
    try {
      expect(bar0.region).toBe(0);
      const byPlace = [...bar0.entries].sort((a, b) => a.offset - b.offset || Number((a.datamatch ?? 0n) - (b.datamatch ?? 0n)));
      expect(byPlace).toEqual([
        { offset: 0x100, size: 4, fdIndex: expect.any(Number) as number, type: 'ioeventfd', flags: 0 },
        { offset: 0x200, size: 2, fdIndex: expect.any(Number) as number, type: 'ioeventfd', flags: IoeventfdFlag.DATAMATCH, datamatch: 0n },
        { offset: 0x200, size: 2, fdIndex: expect.any(Number) as number, type: 'ioeventfd', flags: IoeventfdFlag.DATAMATCH, datamatch: 1n },
      ]);
      expect(bar0.fds).toHaveLength(3);
      expect(new Set(bar0.entries.map((e) => e.fdIndex)).size).toBe(3);
    } finally {
      bar0.fds.forEach((fd) => closeSync(fd));
    }
    const io = await client.getRegionIoFds(2);
    expect(io.entries).toEqual([{ offset: 4, size: 1, fdIndex: 0, type: 'ioeventfd', flags: IoeventfdFlag.PIO }]);
    io.fds.forEach((fd) => closeSync(fd));
    const none = await client.getRegionIoFds(1);
    expect(none).toEqual({ region: 1, entries: [], fds: [] });
  });

  test('refuses malformed requests with EINVAL and keeps serving', async () => {
    const device = new DoorbellDevice();
    const { client } = await serveAndConnect(device);
    const request = (argsz: number, flags: number, index: number, count: number): Buffer => {
      const b = Buffer.alloc(16);
      [argsz, flags, index, count].forEach((v, i) => b.writeUInt32LE(v, 4 * i));
      return b;
    };
    for (const payload of [request(64, 1, 0, 0), request(64, 0, 0, 3), request(8, 0, 0, 0), request(64, 0, 3, 0), request(64, 0, 99, 0), Buffer.alloc(8)]) {
      const err = await rejection(client.request(Command.DEVICE_GET_REGION_IO_FDS, payload));
      expect(err).toBeInstanceOf(VfioUserError);
      expect(err.code).toBe('EINVAL');
    }
    const [tx] = (await client.enableIoEventfds(0)).filter((e) => e.entry.offset === 0x100);
    tx.kick();
    await until(() => device.kicksOf('tx') === 1);
  });
});

describe('kicks through the eventfds', () => {
  test('a matching write kicks the eventfd: no REGION_WRITE, one doorbell call per kick seen', async () => {
    const device = new DoorbellDevice();
    const { client } = await serveAndConnect(device);
    const wired = await client.enableIoEventfds(0);
    expect(wired).toHaveLength(3);
    await client.write32(0, 0x100, 0xdead);
    await until(() => device.kicksOf('tx') === 1);
    expect(device.rings).toEqual([['tx', 1]]);
    expect((device.bar0 as RecordingRegion).writes).toEqual([]);
  });

  test('kicks made before the server runs are coalesced into one call with their count', async () => {
    const device = new DoorbellDevice();
    const { client } = await serveAndConnect(device);
    const tx = (await client.enableIoEventfds(0)).find((e) => e.entry.offset === 0x100);
    expect(tx).toBeDefined();
    // Three writes, all kicked before the event loop turns.
    const writes = [client.write32(0, 0x100, 1), client.write32(0, 0x100, 2), client.write32(0, 0x100, 3)];
    await Promise.all(writes);
    await until(() => device.kicksOf('tx') === 3);
    tx?.kick(4);
    await until(() => device.kicksOf('tx') === 7);
    expect(device.rings).toEqual([['tx', 3], ['tx', 4]]);
  });

  test('datamatch: only the matching value kicks, other values go to the BAR handler', async () => {
    const device = new DoorbellDevice();
    const { client } = await serveAndConnect(device);
    await client.enableIoEventfds(0);
    await client.write16(0, 0x200, 1);
    await until(() => device.kicksOf('queue 1') === 1);
    await client.write16(0, 0x200, 7); // no doorbell has 7: an ordinary write
    await client.write32(0, 0x200, 0); // another size: an ordinary write
    await client.write16(0, 0x200, 0);
    await until(() => device.kicksOf('queue 0') === 1);
    expect((device.bar0 as RecordingRegion).writes).toEqual([[0x200, 2], [0x200, 4]]);
    expect(await client.read16(0, 0x200)).toBe(0); // the 4-byte write of 0 landed last
  });

  test('an onDoorbell that throws is reported; the next kick is delivered', async () => {
    const device = new DoorbellDevice();
    const { server, client } = await serveAndConnect(device);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    await client.enableIoEventfds(0);
    device.failNext = true;
    await client.write32(0, 0x100, 1);
    await until(() => errors.length === 1);
    expect(errors[0].message).toMatch(/tx jammed/);
    await client.write32(0, 0x100, 1);
    await until(() => device.kicksOf('tx') === 1);
  });

  test('a second client gets the same doorbells after the first leaves', async () => {
    const device = new DoorbellDevice();
    const server = serve(device);
    const first = await connect(server);
    await first.enableIoEventfds(0);
    await first.write32(0, 0x100, 1);
    await until(() => device.kicksOf('tx') === 1);
    await first.close();
    const second = await connect(server);
    await second.enableIoEventfds(0);
    await second.write32(0, 0x100, 1);
    await until(() => device.kicksOf('tx') === 2);
  });

  test('disableIoEventfds and close let the fds go: writes go out as messages, kicks fail with EBADF', async () => {
    const device = new DoorbellDevice();
    const before = openFds();
    const server = serve(device);
    const client = await VfioUserClient.connect(server.socket);
    const [first] = await client.enableIoEventfds(0);
    client.disableIoEventfds(0);
    expect(() => first.kick()).toThrow(expect.objectContaining({ code: 'EBADF' }) as Error);
    const wired = await client.enableIoEventfds(0);
    await client.close();
    expect(() => wired[0].kick()).toThrow(expect.objectContaining({ code: 'EBADF' }) as Error);
    await server.close();
    expect(openFds()).toBe(before);
  });
});

describe('doorbells and migration', () => {
  class StoppableBell extends PciDevice {
    readonly kicks: number[] = [];
    readonly memory = new MemoryRegion(0x100);
    constructor() {
      super({ vendorId: 0x1b36, deviceId: 0x0102, bars: [{ index: 0, size: 0x100 }], doorbells: [{ bar: 0, offset: 0, size: 4 }], migration: true });
      this.setBarHandler(0, this.memory);
    }
    override onDoorbell(_doorbell: Doorbell, kicks: number): void {
      expect(this.migrationState).toBe('running');
      this.kicks.push(kicks);
    }
  }

  test('kicks while the device is stopped wait in the eventfd and arrive when it runs again', async () => {
    const device = new StoppableBell();
    const { client } = await serveAndConnect(device);
    const [bell] = await client.enableIoEventfds(0);
    await client.setMigrationState('stop');
    bell.kick();
    bell.kick(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(device.kicks).toEqual([]);
    await client.setMigrationState('running');
    await until(() => device.kicks.length > 0);
    expect(device.kicks).toEqual([3]);
  });

  test("the BAR's handler behind the doorbells migrates its state, and the doorbells work on the destination", async () => {
    const source = new StoppableBell();
    const destination = new StoppableBell();
    const from = await connect(serve(source));
    const to = await connect(serve(destination));
    await from.write32(0, 0x10, 0xc0ffee);
    await migrate(from, to);
    expect(destination.memory.buffer.readUInt32LE(0x10)).toBe(0xc0ffee);
    const [bell] = await to.enableIoEventfds(0);
    bell.kick();
    await until(() => destination.kicks.length === 1);
    to.disableIoEventfds(0);
    await to.write32(0, 0, 1); // a REGION_WRITE ring, not a write to memory
    expect(destination.kicks).toEqual([1, 1]);
    expect(destination.memory.buffer.readUInt32LE(0)).toBe(0);
  });
});

describe('doorbells written with REGION_WRITE (a client without ioeventfds)', () => {
  test('a matching write rings the doorbell once and does not reach the handler; others do', async () => {
    const device = new DoorbellDevice();
    const { client } = await serveAndConnect(device);
    await client.write32(0, 0x100, 5);
    expect(device.rings).toEqual([['tx', 1]]); // synchronous: the reply came after the call
    await client.write16(0, 0x200, 1);
    await client.write16(0, 0x200, 3);
    await client.write8(0, 0x100, 9);
    await client.write8(2, 4, 1);
    expect(device.rings).toEqual([['tx', 1], ['queue 1', 1], ['legacy', 1]]);
    expect((device.bar0 as RecordingRegion).writes).toEqual([[0x200, 2], [0x100, 1]]);
    expect(await client.read8(0, 0x100)).toBe(9);
  });

  test('a BAR without a handler still rings its doorbells', async () => {
    const device = new DoorbellDevice(null);
    const { client } = await serveAndConnect(device);
    await client.write32(0, 0x100, 1);
    await client.write32(0, 0x300, 1);
    expect(device.rings).toEqual([['tx', 1]]);
    expect(await client.read32(0, 0x300)).toBe(0);
  });

  test('an onDoorbell that throws fails the write with EIO and the device keeps serving', async () => {
    const device = new DoorbellDevice();
    const { server, client } = await serveAndConnect(device);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    device.failNext = true;
    const err = await rejection(client.write32(0, 0x100, 1));
    expect(err.code).toBe('EIO');
    await until(() => errors.length === 1);
    await client.write32(0, 0x100, 1);
    expect(device.rings).toEqual([['tx', 1]]);
  });

  test('the handler in front of the doorbells keeps its reset', async () => {
    const regs = new RegisterMap({ ctrl: { offset: 0, width: 4, rw: 0xff } });
    const device = new DoorbellDevice(regs);
    const { client } = await serveAndConnect(device);
    await client.write32(0, 0, 0x5a);
    expect(await client.read32(0, 0)).toBe(0x5a);
    await client.reset();
    expect(await client.read32(0, 0)).toBe(0);
  });
});
