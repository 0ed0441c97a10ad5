import { randomBytes } from 'node:crypto';

import { REG, TestDevice } from '../fixtures/test-device';
import { serveAndConnect, u32 } from '../helpers';

describe('BAR accesses through the client', () => {
  test('register map: reads of 1, 2, 4 and 8 bytes, aligned and not', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect(await client.read32(0, REG.ID)).toBe(0x12345678);
    expect(await client.read16(0, REG.ID + 2)).toBe(0x1234);
    expect(await client.read8(0, REG.ID + 1)).toBe(0x56);
    expect(await client.read64(0, REG.WIDE)).toBe(0x1122334455667788n);
    expect(await client.read64(0, REG.ID)).toBe(0x00005a0012345678n);
    expect([...(await client.readBar(0, REG.ID + 3, 3))]).toEqual([0x12, 0x00, 0x5a]);
    expect(await client.read32(0, 0x800)).toBe(0); // no register there
  });

  test('register map: read-write, read-only and write-1-to-clear bits', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.write32(0, REG.ID, 0xffffffff);
    expect(await client.read32(0, REG.ID)).toBe(0x12345678);

    await client.write32(0, REG.CTRL, 0xffffffff);
    expect(await client.read32(0, REG.CTRL)).toBe(0x5aff);
    await client.write8(0, REG.CTRL, 0x01);
    expect(await client.read32(0, REG.CTRL)).toBe(0x5a01);

    device.regs.set('status', 0x1ff);
    await client.write32(0, REG.STATUS, 0x0f);
    expect(await client.read32(0, REG.STATUS)).toBe(0x1f0);
    await client.write32(0, REG.STATUS, 0x100); // not write-1-to-clear: stays
    expect(await client.read32(0, REG.STATUS)).toBe(0x1f0);

    await client.write16(0, REG.MIXED, 0x0fff);
    expect(await client.read16(0, REG.MIXED)).toBe(0xafff);

    await client.write64(0, REG.WIDE, 0xfedcba9876543210n);
    expect(device.regs.get('wide')).toBe(0xfedcba9876543210n);
    await client.write32(0, REG.WIDE + 4, 0);
    expect(await client.read64(0, REG.WIDE)).toBe(0x76543210n);
  });

  test('register map hooks see client accesses', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    expect(await client.read32(0, REG.COUNTER)).toBe(1);
    expect(await client.read32(0, REG.COUNTER)).toBe(2);
    await client.write32(0, REG.DOORBELL, 0xcafe);
    await client.write16(0, REG.DOORBELL + 2, 0xbeef);
    expect(device.doorbells).toEqual([0xcafe, 0xbeef0000]);
    expect(await client.read32(0, REG.DOORBELL)).toBe(0); // a doorbell stores nothing
  });

  test('a write spanning two registers updates both', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.writeBar(0, REG.CTRL, Buffer.from([0x11, 0x22, 0x33, 0x44, 0xff, 0xff, 0, 0]));
    expect(device.regs.get('ctrl')).toBe(0x5a11);
  });

  test('device reset restores reset values; handlers with reset() are reset too', async () => {
    const device = new TestDevice();
    const { client, server } = await serveAndConnect(device);
    const resets: string[] = [];
    server.on('reset', (kind) => resets.push(kind));
    await client.write32(0, REG.CTRL, 0x33);
    await client.write64(0, REG.WIDE, 0n);
    await client.writeBar(4, 0, Buffer.from([1, 2, 3]));
    await client.writeBar(2, 0, Buffer.from([9]));
    await client.reset();
    expect(resets).toEqual(['device']);
    expect(device.resets).toEqual(['device']);
    expect(await client.read32(0, REG.CTRL)).toBe(0x5a00);
    expect(await client.read64(0, REG.WIDE)).toBe(0x1122334455667788n);
    expect([...(await client.readBar(4, 0, 3))]).toEqual([0, 0, 0]); // clearOnReset
    expect(await client.read8(2, 0)).toBe(9); // plain RAM keeps its content
  });

  test('RAM BARs: every size, and large accesses in one message', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    for (const size of [1, 2, 4, 8, 3, 63, 64, 65, 4096]) {
      const data = randomBytes(size);
      await client.writeBar(2, 0x1000 + size, data);
      expect(Buffer.compare(await client.readBar(2, 0x1000 + size, size), data)).toBe(0);
    }
    // A 1 MiB write (the most one message may carry) arrives whole.
    const big = randomBytes(1 << 20);
    await client.writeBar(2, 0x100000, big);
    expect(Buffer.compare(device.ram.buffer.subarray(0x100000), big)).toBe(0);
    // A read reply must fit the socket buffer (about 200 KiB) here: the
    // library waits for a reply to drain, and this client shares its thread.
    expect(Buffer.compare(await client.readBar(2, 0x100000, 128 << 10), big.subarray(0, 128 << 10))).toBe(0);
    const tail = await client.readBar(2, (2 << 20) - 8, 8);
    expect(tail.length).toBe(8);
  });

  test('I/O BAR', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    await client.writeBar(4, 0xfc, u32(0xa5a5a5a5));
    expect(await client.read32(4, 0xfc)).toBe(0xa5a5a5a5);
  });

  test('concurrent requests are answered in order', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    const reads = await Promise.all(Array.from({ length: 50 }, () => client.read32(0, REG.COUNTER)));
    expect(reads).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  test('REGION_WRITE_MULTI', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const done = await client.writeRegionMulti([
      { region: 0, offset: REG.CTRL, data: Buffer.from([0x42]) },
      { region: 2, offset: 8, data: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) },
    ]);
    expect(done).toBe(2);
    expect(device.regs.get('ctrl')).toBe(0x5a42);
    expect([...device.ram.buffer.subarray(8, 16)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
