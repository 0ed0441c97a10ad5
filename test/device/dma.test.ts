/**
 * device.dma on both paths: memory the client shared (a memfd the server
 * maps) and memory it did not (DMA_READ / DMA_WRITE messages answered by
 * the client), through a real socket.
 */
import { DmaError, type DmaMapping } from '../../lib';
import { VfioUserClient } from '../../lib/client';
import { errorLike } from '../error-like';
import { TestDevice } from '../fixtures/test-device';
import { connect, rejection, serve, serveAndConnect, until } from '../helpers';

const pattern = (length: number, seed = 1): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff));

function dmaError(fn: () => unknown): DmaError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DmaError);
    return err as DmaError;
  }
  throw new Error('expected a DmaError');
}

describe('mappings and their events', () => {
  test('mappings list what the client mapped, mapped or not, and map/unmap come as hooks and events', async () => {
    const device = new TestDevice();
    const events: Array<[string, DmaMapping]> = [];
    device.dma.on('map', (m) => events.push(['map event', m]));
    device.dma.on('unmap', (m) => events.push(['unmap event', m]));
    const { client } = await serveAndConnect(device);
    const shared = await client.mapDma({ iova: 0x200000, size: 0x10000 });
    await client.mapDma({ iova: 0x100000, size: 0x1000, shared: false, writable: false });
    expect(device.dma.mappings).toEqual([
      { iova: 0x100000, length: 0x1000, readable: true, writable: false, mapped: false },
      { iova: 0x200000, length: 0x10000, readable: true, writable: true, mapped: true },
    ]);
    await client.unmapDma(shared);
    expect(device.dma.mappings.map((m) => m.iova)).toEqual([0x100000]);
    // The hook runs before the event.
    expect(device.dmaEvents.map(([what, m]) => [what, m.iova])).toEqual([
      ['map', 0x200000],
      ['map', 0x100000],
      ['unmap', 0x200000],
    ]);
    expect(events.map(([what, m]) => [what, m.iova])).toEqual([
      ['map event', 0x200000],
      ['map event', 0x100000],
      ['unmap event', 0x200000],
    ]);
  });

  test('a view taken before an unmap becomes empty, and the disconnect unmaps everything', async () => {
    const device = new TestDevice();
    const { server, client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    await client.mapDma({ iova: 0x20000, size: 0x1000 });
    const view = device.dma.view(0x10000, 0x100);
    const words = new Uint32Array(view.buffer, view.byteOffset, 0x40);
    const seenInHook: number[] = [];
    device.dma.once('unmap', () => seenInHook.push(view.length));
    await client.unmapDma(memory);
    expect(seenInHook).toEqual([0x100]); // still usable while the listeners run
    expect(view.length).toBe(0);
    expect(words.length).toBe(0);
    expect(view[0]).toBeUndefined();
    expect(dmaError(() => device.dma.view(0x10000, 4)).reason).toBe('unmapped');

    const unmapped: number[] = [];
    device.dma.on('unmap', (m) => unmapped.push(m.iova));
    await client.close();
    await until(() => !server.connected);
    expect(unmapped).toEqual([0x20000]);
    expect(device.dma.mappings).toEqual([]);
  });
});

describe('mapped memory, synchronously', () => {
  test('view, readSync and writeSync reach the client memory zero-copy', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: 0x100000, size: 0x10000 });

    memory.write(0x100100, Buffer.from('from the guest'));
    expect(device.dma.readSync(0x100100, 14).toString()).toBe('from the guest');
    const target = new Uint8Array(14);
    expect(device.dma.readSync(0x100100, target)).toBe(target);
    expect(Buffer.from(target).toString()).toBe('from the guest');

    device.dma.writeSync(0x10fff0, Buffer.from('from the device!'));
    expect(memory.read(0x10fff0, 16).toString()).toBe('from the device!');

    const view = device.dma.view(0x100000, 4);
    view.writeUInt32LE(0xfeedface);
    expect(memory.buffer.readUInt32LE(0)).toBe(0xfeedface);
    expect(device.dma.readSync(0x100000, 0)).toHaveLength(0);
  });

  test('readSync and writeSync span adjacent mappings; a view cannot', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const low = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    const high = await client.mapDma({ iova: 0x11000, size: 0x1000 });
    const data = pattern(0x200);
    device.dma.writeSync(0x10f00, data);
    expect(Buffer.concat([low.read(0x10f00, 0x100), high.read(0x11000, 0x100)])).toEqual(data);
    expect(device.dma.readSync(0x10f00, 0x200)).toEqual(data);
    expect(dmaError(() => device.dma.view(0x10f00, 0x200))).toMatchObject({ reason: 'not-contiguous', code: 'EFAULT' });
  });

  test('refusals: unmapped, out of range, read-only, write-only, and memory that is not mapped here', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x2000, size: 0x1000 });
    await client.mapDma({ iova: 0x4000, size: 0x1000, writable: false });
    await client.mapDma({ iova: 0x5000, size: 0x1000, readable: false });
    await client.mapDma({ iova: 0x8000, size: 0x1000, shared: false });

    const unmapped = dmaError(() => device.dma.readSync(0x1000, 4));
    expect(unmapped).toMatchObject({ reason: 'unmapped', code: 'EFAULT', errno: 14, iova: 0x1000, length: 4 });
    expect(dmaError(() => device.dma.readSync(0x2ffe, 4)).reason).toBe('unmapped'); // runs off the end
    expect(dmaError(() => device.dma.writeSync(0x3000, Buffer.alloc(1))).reason).toBe('unmapped');
    expect(dmaError(() => device.dma.view(0x2800, 0x1000)).reason).toBe('unmapped');
    expect(dmaError(() => device.dma.readSync(0x3800, 0x1000)).reason).toBe('unmapped'); // a gap between mappings

    const before = device.dma.readSync(0x4000, 4);
    expect(dmaError(() => device.dma.writeSync(0x4000, Buffer.alloc(4, 1)))).toMatchObject({ reason: 'read-only', code: 'EACCES' });
    // A write that would span into the read-only mapping moves nothing at all.
    expect(dmaError(() => device.dma.writeSync(0x3ffc, Buffer.alloc(8, 1))).reason).toBe('unmapped');
    expect(device.dma.readSync(0x4000, 4)).toEqual(before);
    expect(dmaError(() => device.dma.readSync(0x5000, 4))).toMatchObject({ reason: 'write-only', code: 'EACCES' });
    // A view could be written, and writing read-only mapped memory would crash the process.
    expect(dmaError(() => device.dma.view(0x4000, 4))).toMatchObject({ reason: 'read-only' });
    expect(dmaError(() => device.dma.view(0x5000, 4))).toMatchObject({ reason: 'write-only' });

    for (const attempt of [() => device.dma.view(0x8000, 4), () => device.dma.readSync(0x8000, 4), () => device.dma.writeSync(0x8000, Buffer.alloc(4))]) {
      const err = dmaError(attempt);
      expect(err).toMatchObject({ reason: 'not-mappable', code: 'EOPNOTSUPP' });
      expect(err.message).toMatch(/dma\.read\(\)/);
    }
    expect(() => device.dma.readSync(-1, 4)).toThrow(errorLike({ code: 'EINVAL' }));
    expect(() => device.dma.view(0x2000, 1.5)).toThrow(errorLike({ code: 'EINVAL' }));
  });
});

describe('read() and write() on both paths', () => {
  test.each([
    ['shared memory (direct)', true],
    ['unshared memory (DMA_READ / DMA_WRITE messages)', false],
  ])('%s: read, read into a target, write', async (_, shared) => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: 0x40000, size: 0x4000, shared });
    memory.write(0x40010, Buffer.from('guest bytes'));

    expect((await device.dma.read(0x40010, 11)).toString()).toBe('guest bytes');
    const target = Buffer.alloc(11);
    expect(await device.dma.read(0x40010, target)).toBe(target);
    expect(target.toString()).toBe('guest bytes');

    const data = pattern(0x3000, 5);
    await device.dma.write(0x40800, data);
    expect(memory.read(0x40800, 0x3000)).toEqual(data);
    expect(await device.dma.read(0x40800, 0x3000)).toEqual(data);
  });

  test('a range across a shared and an unshared mapping goes both ways at once', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const direct = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    const messages = await client.mapDma({ iova: 0x11000, size: 0x1000, shared: false });
    const data = pattern(0x1000, 9);
    await device.dma.write(0x10800, data);
    expect(Buffer.concat([direct.read(0x10800, 0x800), messages.read(0x11000, 0x800)])).toEqual(data);
    expect(await device.dma.read(0x10800, 0x1000)).toEqual(data);
  });

  test('transfers larger than the client takes in one message are split', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const client = await VfioUserClient.connect(server.socket, { maxDataXferSize: 0x1000 });
    try {
      const memory = await client.mapDma({ iova: 0x80000, size: 0x10000, shared: false });
      const data = pattern(0x5800, 3);
      await device.dma.write(0x80400, data);
      expect(memory.read(0x80400, 0x5800)).toEqual(data);
      expect(await device.dma.read(0x80400, 0x5800)).toEqual(data);
    } finally {
      await client.close();
    }
  });

  test('refusals: unmapped, read-only and write-only, before anything is sent', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x10000, size: 0x1000, shared: false, writable: false });
    await client.mapDma({ iova: 0x20000, size: 0x1000, shared: false, readable: false });
    expect(await rejection(device.dma.read(0x30000, 4))).toMatchObject({ reason: 'unmapped' });
    expect(await rejection(device.dma.read(0x10ffc, 8))).toMatchObject({ reason: 'unmapped' });
    expect(await rejection(device.dma.write(0x10000, Buffer.alloc(4)))).toMatchObject({ reason: 'read-only', code: 'EACCES' });
    expect(await rejection(device.dma.read(0x20000, 4))).toMatchObject({ reason: 'write-only', code: 'EACCES' });
    await expect(device.dma.write(0x20000, Buffer.from('ok'))).resolves.toBeUndefined();
    expect((await device.dma.read(0x10000, 4)).length).toBe(4);
  });

  test('several transfers in flight at once each settle with their own data', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: 0x100000, size: 0x10000, shared: false });
    const writes = Array.from({ length: 8 }, (_, i) => device.dma.write(0x100000 + i * 0x1000, pattern(0x1000, i)));
    await Promise.all(writes);
    for (let i = 0; i < 8; i++) {
      expect(memory.read(0x100000 + i * 0x1000, 0x1000)).toEqual(pattern(0x1000, i));
    }
    const reads = await Promise.all(Array.from({ length: 8 }, (_, i) => device.dma.read(0x100000 + (7 - i) * 0x1000, 0x1000)));
    reads.forEach((got, i) => expect(got).toEqual(pattern(0x1000, 7 - i)));
  });

  test('a transfer in flight when the client goes away rejects with disconnected; the device keeps serving', async () => {
    const device = new TestDevice();
    const { server, client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x100000, size: 0x1000, shared: false });
    const inFlight = [device.dma.read(0x100000, 0x100), device.dma.write(0x100000, Buffer.alloc(0x100))];
    await client.close(); // before the client could answer
    for (const pending of inFlight) {
      expect(await rejection(pending)).toMatchObject({ reason: 'disconnected', code: 'ENOTCONN' });
    }
    await until(() => !server.connected);
    expect(await rejection(device.dma.read(0x100000, 4))).toMatchObject({ reason: 'unmapped' });

    const again = await connect(server);
    const memory = await again.mapDma({ iova: 0x100000, size: 0x1000, shared: false });
    memory.write(0x100000, Buffer.from('back'));
    expect((await device.dma.read(0x100000, 4)).toString()).toBe('back');
  });

  test('a transfer in flight when the server closes rejects with disconnected', async () => {
    const device = new TestDevice();
    const { server, client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x100000, size: 0x1000, shared: false });
    const pending = device.dma.read(0x100000, 0x100);
    const closed = server.close();
    expect(await rejection(pending)).toMatchObject({ reason: 'disconnected' });
    expect(device.dma.mappings).toEqual([]);
    await closed;
  });
});
