/**
 * Handlers and hooks that throw, return what they must not, or return a
 * Promise: the client gets an error reply, the server an 'error' event, and
 * the device keeps serving with its state intact. Driven through the client.
 */
import { HandlerError, MemoryRegion, PciDevice, RegisterMap, type RegionHandler, type VfioUserServer } from '../../lib';
import type { VfioUserClient } from '../../lib/client';
import { rejection, serveAndConnect, u32 } from '../helpers';

type Read = (offset: number, data: Buffer) => unknown;
type Write = (offset: number, data: Buffer) => unknown;

/** BAR0: a handler whose behaviour a test sets; BAR1: a register map with hooks it sets; BAR2: RAM. */
class Faulty extends PciDevice {
  read: Read = () => undefined;
  write: Write = () => undefined;
  hookRead: (stored: number) => unknown = (stored) => stored;
  wideRead: (stored: bigint) => unknown = (stored) => stored;
  hookWrite: () => unknown = () => undefined;
  reset: () => unknown = () => undefined;
  readonly ram = new MemoryRegion(0x100);
  readonly regs = new RegisterMap({
    plain: { offset: 0x0, width: 4, rw: true },
    hooked: { offset: 0x4, width: 2, rw: true, read: (v: number) => this.hookRead(v) as number, write: () => this.hookWrite() as void },
    wide: { offset: 0x8, width: 8, rw: true, read: (v: bigint) => this.wideRead(v) as bigint },
  });

  constructor() {
    const bar0: RegionHandler = {
      read: (offset, data) => this.read(offset, data) as void,
      write: (offset, data) => this.write(offset, data) as void,
    };
    super({
      vendorId: 0x1b36,
      deviceId: 0x0100,
      bars: [
        { index: 0, size: 0x100, handler: bar0 },
        { index: 1, size: 0x100, handler: () => this.regs },
        { index: 2, size: 0x100, handler: () => this.ram },
      ],
    });
  }

  override onReset(): void {
    return this.reset() as void;
  }
}

async function setUp(): Promise<{ device: Faulty; client: VfioUserClient; server: VfioUserServer; errors: Error[] }> {
  const device = new Faulty();
  const { client, server } = await serveAndConnect(device);
  const errors: Error[] = [];
  server.on('error', (err) => errors.push(err));
  // State that must survive every fault below.
  await client.writeBar(2, 0x10, Buffer.from('kept'));
  await client.write32(1, 0x0, 0xc0ffee);
  return { device, client, server, errors };
}

/** The device still answers, and what was written before the fault is still there. */
async function intact(client: VfioUserClient): Promise<void> {
  expect((await client.readBar(2, 0x10, 4)).toString()).toBe('kept');
  expect(await client.read32(1, 0x0)).toBe(0xc0ffee);
}

/**
 * Returns once any rejection the handler's Promise left unhandled has been
 * reported. Jest fails the running test on an unhandled rejection (a
 * listener of the test's own would never see it), and Node reports one as
 * soon as the microtasks of the callback that made it have run: by the next
 * turn of the event loop it is known, while this test still runs.
 */
async function unhandledRejectionsReported(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

const rejected = (): Promise<never> => Promise.reject(new Error('too late'));
// eslint-disable-next-line @typescript-eslint/require-await -- an async function that throws is the bad handler under test
const asyncThrow = async (): Promise<void> => {
  throw new Error('async failure');
};

describe('a BAR read handler', () => {
  const cases: Array<[string, Read, RegExp]> = [
    ['throws an Error', () => { throw new Error('read exploded'); }, /^read exploded$/],
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler throwing a non-Error is the case under test
    ['throws a string', () => { throw 'just a string'; }, /a handler threw just a string/],
    ['returns a string', () => 'abcd', /returned a string \("abcd"\): a read handler fills data/],
    ['returns a Buffer of the wrong length', () => Buffer.alloc(2), /returned a Buffer of 2 bytes: a read handler fills data \(4 bytes\)/],
    ['returns another Buffer of the right length', () => Buffer.alloc(4, 1), /returned a Buffer of 4 bytes/],
    ['returns a bigint', () => 0x1234n, /returned bigint 4660n/],
    ['returns an object', () => ({ value: 1 }), /returned an object/],
    ['returns a resolving Promise', () => Promise.resolve(undefined), /returned a Promise: handlers and hooks are synchronous/],
    ['returns a rejected Promise', rejected, /returned a Promise/],
    ['is an async function that throws', asyncThrow, /returned a Promise/],
  ];
  test.each(cases)('%s: EIO to the client, an error event, still serving', async (_what, read, message) => {
    const { device, client, errors } = await setUp();
    device.read = read;
    const err = await rejection(client.read32(0, 0x20));
    expect(err.code).toBe('EIO');
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(message);
    await unhandledRejectionsReported();
    device.read = (_offset, data) => data.writeUInt32LE(0x600d);
    expect(await client.read32(0, 0x20)).toBe(0x600d);
    await intact(client);
  });

  test('returning data itself, a number or nothing is fine', async () => {
    const { device, client, errors } = await setUp();
    device.read = (_offset, data) => data.fill(7);
    expect(await client.read8(0, 0)).toBe(7);
    device.read = (_offset, data) => data.writeUInt16LE(0x1234); // returns 2
    expect(await client.read16(0, 0)).toBe(0x1234);
    device.read = (_offset, data) => {
      data[0] = 9;
    };
    expect(await client.read8(0, 0)).toBe(9);
    expect(errors).toEqual([]);
  });

  test('the error is a HandlerError naming the BAR, with EIO', async () => {
    const { device, client, errors } = await setUp();
    device.read = () => 'oops';
    await rejection(client.read32(0, 0));
    expect(errors[0]).toBeInstanceOf(HandlerError);
    expect(errors[0]).toMatchObject({ handler: 'BAR 0 read handler', code: 'EIO' });
  });
});

describe('memory the server lends a handler cannot be taken away', () => {
  // Node 20 copies memory marked untransferable; Node 24+ refuses to
  // transfer external memory at all. Either way it stays the device's.
  const transfer = (buffer: ArrayBufferLike): void => {
    try {
      structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
    } catch (err) {
      // A DOMException from Node's realm, not jest's: compare by name.
      if ((err as { name?: unknown }).name !== 'DataCloneError') {
        throw err;
      }
    }
  };

  test.each([4, 64, 65, 0x80])('a %i-byte access whose handler transfers data.buffer still works', async (size) => {
    const { device, client, errors } = await setUp();
    device.read = (_offset, data) => {
      transfer(data.buffer);
      data.fill(0x3c);
    };
    device.write = (_offset, data) => {
      transfer(data.buffer);
      expect(data.length).toBe(size);
    };
    expect(await client.readBar(0, 0, size)).toEqual(Buffer.alloc(size, 0x3c));
    await client.writeBar(0, 0, Buffer.alloc(size, 1));
    expect(errors).toEqual([]);
    device.read = (_offset, data) => data.fill(0x42);
    expect(await client.readBar(0, 0x10, 4)).toEqual(Buffer.alloc(4, 0x42));
    await intact(client);
  });

  test("a DMA mapping's memory stays attached when transferred", async () => {
    const { device, client } = await setUp();
    const guest = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    const memory = device.dma.view(0x10000, 0x1000);
    transfer(memory.buffer);
    expect(memory.length).toBe(0x1000);
    device.dma.writeSync(0x10000, Buffer.from('still mine'));
    expect(guest.read(0x10000, 10).toString()).toBe('still mine');
  });
});

describe('a BAR write handler', () => {
  const cases: Array<[string, Write, RegExp]> = [
    ['throws', () => { throw new Error('write exploded'); }, /^write exploded$/],
    ['returns a rejected Promise', rejected, /BAR 0 write handler: returned a Promise/],
    ['is an async function that throws', asyncThrow, /returned a Promise/],
  ];
  test.each(cases)('%s: EIO, an error event, still serving', async (_what, write, message) => {
    const { device, client, errors } = await setUp();
    device.write = write;
    expect((await rejection(client.writeBar(0, 0x20, u32(1)))).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(message)]);
    await unhandledRejectionsReported();
    await intact(client);
  });

  test('what a write handler returns is otherwise its own business', async () => {
    const { device, client, errors } = await setUp();
    const kept = new Map<number, number>();
    device.write = (offset, data) => kept.set(offset, data.readUInt32LE()); // returns the Map
    await client.write32(0, 0x20, 5);
    expect(kept.get(0x20)).toBe(5);
    expect(errors).toEqual([]);
  });
});

describe("a register map's hooks", () => {
  const narrow: Array<[string, (stored: number) => unknown, RegExp]> = [
    ['returns undefined', () => undefined, /registers\.hooked read hook: returned undefined/],
    ['returns a string', () => '12', /returned a string/],
    ['returns a number wider than the register', () => 0x10000, /2-byte register's hook returns an integer from -2\^31 to 2\^16-1/],
    ['returns a fraction', () => 1.5, /returned number 1.5/],
    ['returns NaN', () => NaN, /returned number NaN/],
    ['returns a bigint for a 2-byte register', () => 1n, /returned bigint 1n/],
    ['returns a Promise', () => Promise.resolve(1), /returned a Promise/],
  ];
  test.each(narrow)('a 2-byte read hook that %s fails the access', async (_what, hook, message) => {
    const { device, client, errors } = await setUp();
    device.hookRead = hook;
    expect((await rejection(client.read16(1, 0x4))).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(message)]);
    await unhandledRejectionsReported();
    await intact(client);
  });

  test('a read hook may return the 32-bit signed result of ~ or <<', async () => {
    const { device, client, errors } = await setUp();
    device.hookRead = (stored) => ~stored;
    await client.write16(1, 0x4, 0x00ff);
    expect(await client.read16(1, 0x4)).toBe(0xff00);
    expect(errors).toEqual([]);
  });

  test('an 8-byte read hook must return a bigint', async () => {
    const { device, client, errors } = await setUp();
    device.wideRead = () => 5;
    expect((await rejection(client.read64(1, 0x8))).code).toBe('EIO');
    device.wideRead = () => 1n << 64n;
    expect((await rejection(client.read64(1, 0x8))).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/registers\.wide read hook: returned number 5: an 8-byte register's hook returns a bigint/),
      expect.stringMatching(/returned bigint 18446744073709551616n/),
    ]);
    device.wideRead = () => -1n;
    expect(await client.read64(1, 0x8)).toBe(0xffffffffffffffffn);
    await intact(client);
  });

  test('an async write hook fails the write, which was stored already', async () => {
    const { device, client, errors } = await setUp();
    device.hookWrite = asyncThrow;
    expect((await rejection(client.write16(1, 0x4, 0x42))).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/registers\.hooked write hook: returned a Promise/)]);
    await unhandledRejectionsReported();
    device.hookWrite = () => undefined;
    expect(await client.read16(1, 0x4)).toBe(0x42);
    await intact(client);
  });
});

describe('hooks', () => {
  test('an async onReset fails the reset with EIO and its rejection is not unhandled', async () => {
    const { device, client, errors } = await setUp();
    device.reset = asyncThrow;
    expect((await rejection(client.reset())).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/^onReset: returned a Promise/)]);
    await unhandledRejectionsReported();
    device.reset = () => undefined;
    await client.reset();
    expect((await client.readBar(2, 0x10, 4)).toString()).toBe('kept'); // RAM survives a reset
  });
});
