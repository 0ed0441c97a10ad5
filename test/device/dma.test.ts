import { TestDevice } from '../fixtures/test-device';
import { serveAndConnect } from '../helpers';

describe('DMA to memfd-backed guest memory', () => {
  test('the device reads and writes what the client mapped, zero-copy on both sides', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: 0x100000, size: 0x10000 });
    expect(device.dmaMappings).toEqual([
      expect.objectContaining({ iova: 0x100000, length: 0x10000, readable: true, writable: true }),
    ]);
    expect(device.dmaEvents.map(([what]) => what)).toEqual(['map']);

    memory.write(0x100100, Buffer.from('from the guest'));
    expect(device.dmaRead(0x100100, 14).toString()).toBe('from the guest');

    device.dmaWrite(0x10fff0, Buffer.from('from the device!'));
    expect(memory.read(0x10fff0, 16).toString()).toBe('from the device!');

    const view = device.dmaView(0x100000, 4);
    view.writeUInt32LE(0xfeedface);
    expect(memory.buffer.readUInt32LE(0)).toBe(0xfeedface);
  });

  test('accesses outside the mappings fail with EFAULT', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x2000, size: 0x1000 });
    expect(() => device.dmaRead(0x1000, 4)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(() => device.dmaRead(0x2ffe, 4)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(() => device.dmaWrite(0x3000, Buffer.alloc(1))).toThrow(expect.objectContaining({ code: 'EFAULT' }));
  });

  test('a read-only mapping refuses device writes', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: 0x4000, size: 0x1000, writable: false });
    expect(device.dmaMappings[0].writable).toBe(false);
    expect(() => device.dmaWrite(0x4000, Buffer.alloc(4))).toThrow(expect.objectContaining({ code: 'EACCES' }));
    expect(device.dmaRead(0x4000, 4).length).toBe(4);
  });

  test('unmapping removes the mapping and empties its memory', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const a = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    await client.mapDma({ iova: 0x20000, size: 0x1000 });
    const kept = device.dmaMappings[0];
    await client.unmapDma(a);
    expect(device.dmaMappings.map((m) => m.iova)).toEqual([0x20000]);
    expect(kept.memory?.length).toBe(0);
    expect(device.dmaEvents.map(([what, m]) => [what, m.iova])).toEqual([
      ['map', 0x10000],
      ['map', 0x20000],
      ['unmap', 0x10000],
    ]);
    expect(() => device.dmaRead(0x10000, 1)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(client.dmaMappings.map((m) => m.iova)).toEqual([0x20000]);
    expect(a.buffer.length).toBe(0);
  });
});
