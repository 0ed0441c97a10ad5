import { existsSync, linkSync, renameSync, statSync } from 'node:fs';

import { DeviceDescriptionError, OptionsError, PciDevice, RegisterMap, VfioUserError, VfioUserServer } from '../../lib';
import { VfioUserClient } from '../../lib/client';
import { REG, TestDevice } from '../fixtures/test-device';
import { connect, nextEvent, rejection, serve, serveAndConnect, socketPath, until } from '../helpers';

describe('VfioUserServer', () => {
  test('listens when constructed, with a private socket', () => {
    const server = serve(new TestDevice());
    expect(server.listening).toBe(true);
    expect(server.connected).toBe(false);
    expect(statSync(server.socket).isSocket()).toBe(true);
    expect(statSync(server.socket).mode & 0o777).toBe(0o600);
  });

  test('connect, disconnect and lost-connection reset events', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const events: string[] = [];
    server.on('connect', () => events.push('connect'));
    server.on('disconnect', () => events.push('disconnect'));
    server.on('reset', (kind) => events.push(`reset:${kind}`));
    const client = await connect(server);
    await until(() => events.includes('connect'));
    expect(server.connected).toBe(true);
    expect(device.connects).toBe(1);
    await client.close();
    await until(() => events.includes('disconnect'));
    expect(events).toEqual(['connect', 'reset:lost-connection', 'disconnect']);
    expect(device.disconnects).toBe(1);
    expect(server.connected).toBe(false);
  });

  test('a client that reconnects finds the device state kept', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const first = await connect(server);
    await first.write32(0, REG.CTRL, 0x42);
    await first.writeBar(2, 0x10, Buffer.from('kept'));
    await first.mapDma({ iova: 0x100000, size: 0x2000 });
    expect(device.dma.mappings).toHaveLength(1);
    await first.close();
    await until(() => !server.connected);
    expect(device.dma.mappings).toHaveLength(0); // the client's memory is gone
    const second = await connect(server);
    expect(await second.read32(0, REG.CTRL)).toBe(0x5a42);
    expect((await second.readBar(2, 0x10, 4)).toString()).toBe('kept');
    expect(device.resets).toEqual(['lost-connection']);
  });

  test('a second client hears at once that the server is busy, and one after the first is served', async () => {
    const server = serve(new TestDevice());
    const first = await connect(server);
    const second = VfioUserClient.connect(server.socket, { timeout: 5000 });
    expect(await rejection(second)).toMatchObject({ code: 'EBUSY' });
    expect(await first.read32(0, REG.ID)).toBe(0x12345678);
    await first.close();
    const third = await connect(server);
    expect(await third.read32(0, REG.ID)).toBe(0x12345678);
  });

  test('two devices served by one process', async () => {
    class Counter extends PciDevice {
      value = 0;
      regs = new RegisterMap({ value: { offset: 0, width: 4, read: () => this.value } });
      constructor(readonly tag: number) {
        super({ vendorId: 0x1b36, deviceId: tag, bars: [{ index: 0, size: 16, handler: () => this.regs }], msix: { vectors: 1, bar: 1 } });
      }
    }
    const a = new Counter(0xa);
    const b = new Counter(0xb);
    const [clientA, clientB] = await Promise.all([connect(serve(a)), connect(serve(b))]);
    a.value = 1;
    b.value = 2;
    const [ra, rb, ida, idb] = await Promise.all([
      clientA.read32(0, 0),
      clientB.read32(0, 0),
      clientA.read16(7, 2),
      clientB.read16(7, 2),
    ]);
    expect([ra, rb, ida, idb]).toEqual([1, 2, 0xa, 0xb]);
    const [lineA] = await clientA.enableInterrupts('msix');
    const [lineB] = await clientB.enableInterrupts('msix');
    await clientA.write16(7, a.capabilityOffset('msix')! + 2, 0x8000);
    await clientB.write16(7, b.capabilityOffset('msix')! + 2, 0x8000);
    b.msix(0);
    expect(await lineB.wait(1000)).toBe(1);
    expect(lineA.take()).toBe(0);
  });

  test('close() disconnects the client, removes the socket and is idempotent', async () => {
    const device = new TestDevice();
    const { server, client } = await serveAndConnect(device);
    const closed = nextEvent<[Error]>(client, 'close');
    const serverClosed = nextEvent(server, 'close');
    await server.close();
    await server.close();
    await serverClosed;
    expect(server.listening).toBe(false);
    expect(existsSync(server.socket)).toBe(false);
    expect(device.served).toBe(false);
    expect(device.resets).toEqual(['lost-connection']);
    const [reason] = await closed;
    expect((reason as VfioUserError).code).toBe('ECONNRESET');
    expect((await rejection(client.read32(0, 0))).code).toBe('ENOTCONN');
    expect((await rejection(VfioUserClient.connect(server.socket))).code).toBe('ENOENT');
    // The device can be served again.
    const again = serve(device);
    const client2 = await connect(again);
    expect(await client2.read32(0, REG.ID)).toBe(0x12345678);
  });

  test('close() with no client connected resets nothing', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const events: string[] = [];
    server.on('reset', (kind) => events.push(kind));
    // A client that came and went: one lost connection, and no more at close().
    const client = await connect(server);
    await client.close();
    await until(() => !server.connected);
    await server.close();
    expect(events).toEqual(['lost-connection']);
    expect(device.resets).toEqual(['lost-connection']);
    const idle = new TestDevice();
    const idleServer = serve(idle);
    idleServer.on('reset', (kind) => events.push(`idle:${kind}`));
    await idleServer.close();
    expect(idle.resets).toEqual([]);
    expect(events).toEqual(['lost-connection']);
  });

  test('descriptions and options are checked before anything listens', () => {
    expect(() => new PciDevice({ vendorId: 1, deviceId: 2, bars: [{ index: 0, size: 1000 }] })).toThrow(DeviceDescriptionError);
    expect(() => new PciDevice({ vendorId: 1, deviceId: 2, bars: [{ index: 5, size: 16, bits64: true }] })).toThrow(
      DeviceDescriptionError,
    );
    expect(() => new PciDevice({ vendorId: 1, deviceId: 2, msix: { vectors: 4096, bar: 0 } })).toThrow(DeviceDescriptionError);
    const long = `/tmp/${'x'.repeat(120)}.sock`;
    let caught: unknown;
    try {
      new VfioUserServer(new TestDevice(), { socket: long });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptionsError);
    expect((caught as OptionsError).field).toBe('socket');
    expect(existsSync(long)).toBe(false);
    expect(() => new VfioUserServer(new TestDevice(), { socket: '' })).toThrow(OptionsError);
    expect(() => new VfioUserServer(new TestDevice(), { socket: socketPath(), logLevel: 9 })).toThrow(OptionsError);
  });

  test('a handler function that returns no handler is refused', () => {
    const device = new PciDevice({
      vendorId: 1,
      deviceId: 2,
      bars: [{ index: 0, size: 16, handler: () => undefined as never }],
    });
    expect(() => new VfioUserServer(device, { socket: socketPath() })).toThrow(DeviceDescriptionError);
    expect(device.served).toBe(false);
  });

  test('one device, one server', () => {
    const device = new TestDevice();
    serve(device);
    expect(() => serve(device)).toThrow(/already being served/);
  });

  test('socket errors are typed', () => {
    const err = (() => {
      try {
        new VfioUserServer(new TestDevice(), { socket: '/nonexistent-dir/dev.sock' });
      } catch (e) {
        return e as VfioUserError;
      }
      throw new Error('accepted');
    })();
    expect(err).toBeInstanceOf(VfioUserError);
    expect(err.code).toBe('ENOENT');
  });

  test('a stale socket left by a dead server is replaced', async () => {
    const path = socketPath();
    const first = serve(new TestDevice(), { socket: path });
    // Pretend the process died: the socket file stays, nobody listens.
    linkSync(path, `${path}.keep`);
    await first.close();
    renameSync(`${path}.keep`, path);
    expect(existsSync(path)).toBe(true);
    const second = serve(new TestDevice(), { socket: path });
    const client = await connect(second);
    expect(await client.read32(0, REG.ID)).toBe(0x12345678);
    await second.close();
    expect(existsSync(path)).toBe(false);
  });

  test("library messages are emitted as 'log'", async () => {
    const { server, client } = await serveAndConnect(new TestDevice());
    const logs: Array<[number, string]> = [];
    server.on('log', (level, message) => logs.push([level, message]));
    await rejection(client.enableInterrupts('msix', { start: 9, count: 1 }));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs[0][0]).toBeLessThanOrEqual(3);
  });
});
