import { linkSync, renameSync } from 'node:fs';
import * as net from 'node:net';

import { ProtocolError, Region, TimeoutError, VfioUserError } from '../../lib';
import { Command, HeaderFlag, VfioUserClient } from '../../lib/client';
import { decodeHeader, encodeHeader, HEADER_SIZE } from '../../lib/client/protocol';
import { TestDevice } from '../fixtures/test-device';
import { connect, nextEvent, rejection, serve, serveAndConnect, socketPath } from '../helpers';

interface FakeMessage {
  id: number;
  command: number;
  flags: number;
  payload: Buffer;
}

/**
 * A scripted vfio-user server on a plain Node socket, to put the client in
 * situations a correct server never creates.
 */
function fakeServer(onMessage: (message: FakeMessage, reply: (payload: Buffer, flags?: number, error?: number) => void, socket: net.Socket) => void): Promise<{ path: string; close: () => void }> {
  const path = socketPath('fake');
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER_SIZE && pending.length >= decodeHeader(pending).size) {
        const { id, command, flags, size } = decodeHeader(pending);
        const message = { id, command, flags, payload: pending.subarray(HEADER_SIZE, size) };
        pending = pending.subarray(size);
        onMessage(
          message,
          (payload, flags = HeaderFlag.TYPE_REPLY, error = 0) => socket.write(frame(message.id, message.command, flags, payload, error)),
          socket,
        );
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(path, () =>
      resolve({
        path,
        close: () => {
          sockets.forEach((s) => s.destroy());
          server.close();
        },
      }),
    ),
  );
}

/** A whole message: header then payload. */
function frame(id: number, command: number, flags: number, payload: Buffer, error = 0): Buffer {
  return Buffer.concat([encodeHeader(id, command, payload.length, flags, error), payload]);
}

function versionReply(json = '{"capabilities":{"max_msg_fds":4}}'): Buffer {
  const fixed = Buffer.alloc(4);
  fixed.writeUInt16LE(0, 0);
  fixed.writeUInt16LE(2, 2);
  return Buffer.concat([fixed, Buffer.from(`${json}\0`)]);
}

const fakes: Array<{ close: () => void }> = [];
afterEach(() => fakes.splice(0).forEach((f) => f.close()));

async function fake(...args: Parameters<typeof fakeServer>): Promise<string> {
  const f = await fakeServer(...args);
  fakes.push(f);
  return f.path;
}

describe('VfioUserClient against our server', () => {
  test('negotiation', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect(client.version).toEqual({ major: 0, minor: 2 });
    expect(client.serverCapabilities).toMatchObject({ maxMsgFds: expect.any(Number) as unknown, maxDataXferSize: 1 << 20 });
    expect(client.serverCapabilities.maxMsgFds).toBeGreaterThan(0);
    const older = await VfioUserClient.connect(serve(new TestDevice()).socket, { minor: 1 });
    expect(older.version).toEqual({ major: 0, minor: 1 });
    await older.close();
  });

  test('device, region and IRQ information', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect(await client.getDeviceInfo()).toEqual({ flags: 3, canReset: true, isPci: true, numRegions: 9, numIrqs: 5 });
    const bar0 = await client.getRegionInfo(0);
    expect(bar0).toMatchObject({ index: 0, size: 0x1000, readable: true, writable: true, mappable: false, fd: undefined });
    expect((await client.getRegionInfo(1)).size).toBe(0x1000);
    expect((await client.getRegionInfo(2)).size).toBe(2 << 20);
    expect((await client.getRegionInfo(3)).size).toBe(0); // upper half of BAR2
    expect((await client.getRegionInfo(4)).size).toBe(256);
    expect((await client.getRegionInfo(5)).size).toBe(0);
    expect((await client.getRegionInfo(Region.CONFIG)).size).toBe(4096);
    // The VFIO IRQ indices: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4.
    expect(await client.getIrqInfo('intx')).toMatchObject({ index: 0, count: 1 });
    expect(await client.getIrqInfo('msi')).toMatchObject({ index: 1, count: 4 });
    expect(await client.getIrqInfo('msix')).toMatchObject({ index: 2, count: 4 });
    expect(await client.getIrqInfo('err')).toMatchObject({ index: 3, count: 1 });
    expect(await client.getIrqInfo(4)).toMatchObject({ index: 4, count: 1 });
  });

  test('connecting to nothing', async () => {
    const missing = await rejection(VfioUserClient.connect(socketPath('missing')));
    expect(missing).toBeInstanceOf(VfioUserError);
    expect(missing.code).toBe('ENOENT');
    // A socket file nobody listens on.
    const path = socketPath('dead');
    const server = serve(new TestDevice(), { socket: path });
    linkSync(path, `${path}.keep`);
    await server.close();
    renameSync(`${path}.keep`, path);
    expect((await rejection(VfioUserClient.connect(path))).code).toBe('ECONNREFUSED');
  });

  test('the connection closing fails pending requests and emits close', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const client = await connect(server);
    const closed = nextEvent<[Error]>(client, 'close');
    const [line] = await client.enableInterrupts('msix', { count: 1 });
    const waiting = line.wait(0);
    const serverClosed = server.close();
    expect((await closed)[0]).toBeInstanceOf(VfioUserError);
    expect((await rejection(waiting)).code).toBe('EBADF');
    expect(client.connected).toBe(false);
    await serverClosed;
  });
});

describe('VfioUserClient against a scripted server', () => {
  test('no VERSION reply: the connect times out', async () => {
    const path = await fake(() => {});
    const err = await rejection(VfioUserClient.connect(path, { timeout: 100 }));
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.code).toBe('ETIMEDOUT');
  });

  test('a request that gets no reply times out; a late reply is dropped', async () => {
    let late: (() => void) | undefined;
    const path = await fake((message, reply) => {
      if (message.command === Command.VERSION) {
        reply(versionReply());
      } else if (message.command === Command.DEVICE_GET_INFO) {
        late = () => reply(Buffer.alloc(16));
      } else if (message.command === Command.DEVICE_RESET) {
        reply(Buffer.alloc(0));
      }
    });
    const client = await connect(path);
    expect(client.serverCapabilities.maxMsgFds).toBe(4);
    expect(client.serverCapabilities.maxDataXferSize).toBe(1 << 20);
    const err = await rejection(client.request(Command.DEVICE_GET_INFO, Buffer.alloc(16), { timeout: 50 }));
    expect(err).toBeInstanceOf(TimeoutError);
    late?.();
    await client.reset();
    expect(client.connected).toBe(true);
  });

  test('error replies: the errno, or EIO when the server gives none', async () => {
    const path = await fake((message, reply) => {
      if (message.command === Command.VERSION) {
        reply(versionReply());
      } else {
        reply(Buffer.alloc(0), HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR, message.command === Command.DEVICE_RESET ? 0 : 95);
      }
    });
    const client = await connect(path);
    expect((await rejection(client.getDeviceInfo())).code).toBe('EOPNOTSUPP');
    expect((await rejection(client.reset())).code).toBe('EIO');
  });

  test('malformed VERSION replies are protocol errors', async () => {
    const badJson = await fake((m, reply) => reply(versionReply('{"capabilities":')));
    expect(await rejection(VfioUserClient.connect(badJson))).toBeInstanceOf(ProtocolError);
    const badMajor = await fake((m, reply) => reply(Buffer.from([1, 0, 0, 0])));
    expect(await rejection(VfioUserClient.connect(badMajor))).toBeInstanceOf(ProtocolError);
    const badType = await fake((m, reply) => reply(versionReply('{"capabilities":{"max_msg_fds":"many"}}')));
    expect(await rejection(VfioUserClient.connect(badType))).toBeInstanceOf(ProtocolError);
  });

  test('replies that do not match the request are protocol errors', async () => {
    const path = await fake((message, reply, socket) => {
      if (message.command === Command.VERSION) {
        reply(versionReply());
      } else if (message.command === Command.REGION_READ) {
        reply(Buffer.alloc(16)); // count 0, no data
      } else {
        socket.write(frame(message.id, Command.DEVICE_RESET, HeaderFlag.TYPE_REPLY, Buffer.alloc(0)));
      }
    });
    const client = await connect(path);
    expect(await rejection(client.read32(0, 0))).toBeInstanceOf(ProtocolError);
    expect(await rejection(client.getDeviceInfo())).toBeInstanceOf(ProtocolError);
  });

  test('an impossible message size ends the connection', async () => {
    const path = await fake((message, reply, socket) => {
      if (message.command === Command.VERSION) {
        reply(versionReply());
      } else {
        socket.write(Buffer.from([1, 0, 4, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]));
      }
    });
    const client = await connect(path);
    const closed = nextEvent<[Error]>(client, 'close');
    expect((await rejection(client.getDeviceInfo())).code).toBe('ENOTCONN');
    expect((await closed)[0]).toBeInstanceOf(ProtocolError);
  });

  test('DMA_READ and DMA_WRITE from the server are served from guest memory', async () => {
    const results: FakeMessage[] = [];
    let sendCommands: (() => void) | undefined;
    const done = new Promise<void>((resolve) => {
      void fake((message, reply, socket) => {
        if ((message.flags & HeaderFlag.TYPE_MASK) === HeaderFlag.TYPE_REPLY) {
          results.push(message);
          if (results.length === 3) {
            resolve();
          }
        } else if (message.command === Command.VERSION) {
          reply(versionReply());
        } else if (message.command === Command.DMA_MAP) {
          reply(Buffer.alloc(0));
          sendCommands = () => {
            const write = Buffer.alloc(16 + 5);
            write.writeBigUInt64LE(0x1008n, 0);
            write.writeBigUInt64LE(5n, 8);
            write.write('hello', 16);
            socket.write(frame(7, Command.DMA_WRITE, HeaderFlag.TYPE_COMMAND, write));
            const read = Buffer.alloc(16);
            read.writeBigUInt64LE(0x1000n, 0);
            read.writeBigUInt64LE(16n, 8);
            socket.write(frame(8, Command.DMA_READ, HeaderFlag.TYPE_COMMAND, read));
            const outside = Buffer.alloc(16);
            outside.writeBigUInt64LE(0x9000n, 0);
            outside.writeBigUInt64LE(1n, 8);
            socket.write(frame(9, Command.DMA_READ, HeaderFlag.TYPE_COMMAND, outside));
          };
        }
      }).then((path) => connectAndMap(path));
    });
    const connectAndMap = async (path: string): Promise<void> => {
      const client = await connect(path);
      const memory = await client.mapDma({ iova: 0x1000, size: 0x1000 });
      memory.write(0x1000, Buffer.from('01234567'));
      sendCommands?.();
    };
    await done;
    expect(results.map((r) => [r.id, r.command, r.flags])).toEqual([
      [7, Command.DMA_WRITE, HeaderFlag.TYPE_REPLY],
      [8, Command.DMA_READ, HeaderFlag.TYPE_REPLY],
      [9, Command.DMA_READ, HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR],
    ]);
    expect(results[1].payload.subarray(16).toString()).toBe('01234567hello\0\0\0');
  });
});
