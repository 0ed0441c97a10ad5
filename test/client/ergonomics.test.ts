/**
 * What a device author meets first with the client: plain numbers from
 * interrupt lines, errors that say which access failed and why, typed
 * argument errors, a busy server named as such, and a close() to await.
 */
import * as net from 'node:net';

import { ArgumentError, Region, RegionAccessError, VfioUserError } from '../../lib';
import { VfioUserClient } from '../../lib/client';
import { encodeHeader, HeaderFlag } from '../../lib/client/protocol';
import { REG, TestDevice } from '../fixtures/test-device';
import { connect, rejection, serve, serveAndConnect, socketPath } from '../helpers';

test('interrupt lines count in numbers', async () => {
  const { server, client } = await serveAndConnect(new TestDevice());
  const [line] = await client.enableInterrupts('msix', { count: 1 });
  expect(line.take()).toBe(0);
  server.device.msix(0);
  server.device.msix(0);
  expect(await line.wait(1000)).toBe(2);
  expect(line.take()).toBe(0);
});

test('a refused access names the region, the range and why', async () => {
  const { client } = await serveAndConnect(new TestDevice());
  const past = await rejection(client.readBar(0, 0x1000, 4));
  expect(past).toBeInstanceOf(RegionAccessError);
  expect(past.message).toBe('REGION_READ of BAR0 [0x1000, +4) failed: EINVAL (past the end of the region, size 0x1000)');
  expect(past).toMatchObject({ code: 'EINVAL', syscall: 'REGION_READ', region: 0, offset: 0x1000, count: 4 });

  const straddling = await rejection(client.writeBar(4, 0xfe, Buffer.alloc(4)));
  expect(straddling.message).toBe('REGION_WRITE of BAR4 [0xfe, +4) failed: EINVAL (past the end of the region, size 0x100)');

  const missing = await rejection(client.readBar(5, 0, 4));
  expect(missing.message).toBe('REGION_READ of BAR5 [0x0, +4) failed: EINVAL (the device has no such region)');

  // The device serves on, state intact.
  await client.write32(2, 0x10, 0xabcd1234);
  expect(await client.read32(2, 0x10)).toBe(0xabcd1234);
});

test('bad arguments throw ArgumentError before anything is sent', async () => {
  const { client } = await serveAndConnect(new TestDevice());
  const cases: Array<[Promise<unknown>, string]> = [
    [client.readBar(0, -4, 4), 'REGION_READ: offset must be an integer from 0 to 2^53 - 1, not -4'],
    [client.writeBar(0, 0.5, Buffer.alloc(4)), 'REGION_WRITE: offset must be an integer from 0 to 2^53 - 1, not 0.5'],
    [client.readBar(6, 0, 4), 'REGION_READ: bar must be an integer from 0 to 0x5, not 6'],
    [client.readRegion(Region.CONFIG, 0, -1), 'REGION_READ: count must be an integer from 0 to 0xffffffff, not -1'],
    [client.read32(-1, 0), 'REGION_READ: region must be an integer from 0 to 0xffffffff, not -1'],
    [client.writeRegionMulti([{ region: 0, offset: 0, data: new Uint8Array(9) }]), 'REGION_WRITE_MULTI: writes[0].data has 9 bytes; each write takes 1 to 8'],
    [client.mapDma({ iova: -4096, size: 4096 }), 'guest memory: iova and size must be a non-negative iova and a positive size, not -4096/4096'],
    [client.unmapDmaRange(0, -1), 'DMA_UNMAP: size must be an integer from 0 to 2^53 - 1, not -1'],
    [client.enableInterrupts('msix', { start: 4 }), 'DEVICE_SET_IRQS: start 4 leaves no msix vectors to enable'],
  ];
  for (const [promise, message] of cases) {
    const err = await rejection(promise);
    expect(err).toBeInstanceOf(ArgumentError);
    expect(err).toBeInstanceOf(VfioUserError);
    expect(err).toMatchObject({ code: 'EINVAL', message });
  }
  expect(await client.read32(0, REG.ID)).toBe(await client.read32(0, REG.ID));
});

test('a second client while one is attached hears at once that the server is busy', async () => {
  const server = serve(new TestDevice());
  const first = await connect(server);
  await first.write32(2, 0x10, 0x600df00d);
  const started = Date.now();
  const err = await rejection(VfioUserClient.connect(server.socket, { timeout: 5000 }));
  expect(Date.now() - started).toBeLessThan(1000);
  expect(err).toMatchObject({ code: 'EBUSY', syscall: 'connect', message: `connect failed: EBUSY: ${server.socket}: the device is busy with another client` });
  // The attached client is served on, its device state intact.
  expect(await first.read32(2, 0x10)).toBe(0x600df00d);
});

test('a server that answers VERSION with EBUSY is reported as busy at once', async () => {
  const path = socketPath('busy');
  const busy = net.createServer((socket) =>
    socket.once('data', (bytes) => {
      const error = HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR;
      socket.end(encodeHeader(bytes.readUInt16LE(0), bytes.readUInt16LE(2), 0, error, 16));
    }),
  );
  await new Promise<void>((resolve) => busy.listen(path, resolve));
  try {
    const err = await rejection(VfioUserClient.connect(path));
    expect(err).toMatchObject({ code: 'EBUSY', syscall: 'connect', message: `connect failed: EBUSY: ${path}: the device is busy with another client` });
  } finally {
    busy.close();
  }
});

test('close() resolves on both sides', async () => {
  const server = serve(new TestDevice());
  const client = await VfioUserClient.connect(server.socket);
  await expect(client.close()).resolves.toBeUndefined();
  await expect(server.close()).resolves.toBeUndefined();
  expect(server.listening).toBe(false);
  await expect(server.close()).resolves.toBeUndefined(); // idempotent
});
