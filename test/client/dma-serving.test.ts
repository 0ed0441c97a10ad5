/**
 * The client answers a server's DMA_READ and DMA_WRITE from its own guest
 * memory, as the specification says: checked here against a scripted
 * server that sends exactly the messages a test wants, including bad ones.
 */
import { createServer, type Server, type Socket } from 'node:net';

import { VfioUserClient } from '../../lib/client';
import { Command, decodeHeader, encodeHeader, encodeVersion, HEADER_SIZE, HeaderFlag } from '../../lib/client/protocol';
import { socketPath } from '../helpers';

interface Reply {
  id: number;
  error: number;
  payload: Buffer;
}

/** A server that answers VERSION and DMA_MAP, and sends DMA commands on request. */
class ScriptedServer {
  private socket: Socket | undefined;
  private received = Buffer.alloc(0);
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private nextId = 0x100;

  private constructor(readonly server: Server, readonly path: string) {
    server.on('connection', (socket) => {
      this.socket = socket;
      socket.on('data', (chunk) => this.onData(chunk));
    });
  }

  static async listen(): Promise<ScriptedServer> {
    const path = socketPath('scripted');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return new ScriptedServer(server, path);
  }

  /** Sends a DMA_READ or DMA_WRITE and resolves with the client's reply. */
  send(command: number, iova: number, count: number, data: Buffer = Buffer.alloc(0)): Promise<Reply> {
    const body = Buffer.alloc(16);
    body.writeBigUInt64LE(BigInt(iova), 0);
    body.writeBigUInt64LE(BigInt(count), 8);
    const payload = Buffer.concat([body, data]);
    const id = this.nextId++;
    this.socket!.write(Buffer.concat([encodeHeader(id, command, payload.length, HeaderFlag.TYPE_COMMAND), payload]));
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  close(): void {
    this.socket?.destroy();
    this.server.close();
  }

  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    while (this.received.length >= HEADER_SIZE) {
      const header = decodeHeader(this.received);
      if (this.received.length < header.size) {
        return;
      }
      const payload = this.received.subarray(HEADER_SIZE, header.size);
      this.received = this.received.subarray(header.size);
      if ((header.flags & HeaderFlag.TYPE_MASK) === HeaderFlag.TYPE_REPLY) {
        this.waiting.get(header.id)?.({ id: header.id, error: (header.flags & HeaderFlag.ERROR) !== 0 ? header.error : 0, payload: Buffer.from(payload) });
        continue;
      }
      const reply = header.command === Command.VERSION ? encodeVersion(0, 0, { max_msg_fds: 8, max_data_xfer_size: 1 << 20 }) : Buffer.alloc(0);
      this.socket!.write(Buffer.concat([encodeHeader(header.id, header.command, reply.length, HeaderFlag.TYPE_REPLY), reply]));
    }
  }
}

const EFAULT = 14;
const EPERM = 1;
const EINVAL = 22;

describe('the client serves DMA_READ and DMA_WRITE from its guest memory', () => {
  let server: ScriptedServer;
  let client: VfioUserClient;

  beforeEach(async () => {
    server = await ScriptedServer.listen();
    client = await VfioUserClient.connect(server.path, { maxDataXferSize: 0x2000 });
  });

  afterEach(async () => {
    await client.close();
    server.close();
  });

  test('reads and writes, within a mapping and across adjacent ones, shared or not', async () => {
    const low = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    const high = await client.mapDma({ iova: 0x11000, size: 0x1000, shared: false });
    low.write(0x10ff0, Buffer.from('0123456789abcdef'));
    high.write(0x11000, Buffer.from('ghij'));

    const read = await server.send(Command.DMA_READ, 0x10ff8, 12);
    expect(read.error).toBe(0);
    expect(read.payload.readBigUInt64LE(0)).toBe(0x10ff8n);
    expect(read.payload.readBigUInt64LE(8)).toBe(12n);
    expect(read.payload.subarray(16).toString()).toBe('89abcdefghij');

    const write = await server.send(Command.DMA_WRITE, 0x10ffe, 4, Buffer.from('WXYZ'));
    expect(write.error).toBe(0);
    expect(write.payload).toHaveLength(16);
    expect(low.read(0x10ffe, 2).toString()).toBe('WX');
    expect(high.read(0x11000, 2).toString()).toBe('YZ');
  });

  test('refuses unmapped addresses (EFAULT), forbidden accesses (EPERM) and oversized or malformed messages (EINVAL)', async () => {
    const memory = await client.mapDma({ iova: 0x20000, size: 0x4000, shared: false, writable: false });
    await client.mapDma({ iova: 0x30000, size: 0x1000, shared: false, readable: false });
    memory.write(0x20000, Buffer.from('kept'));

    expect((await server.send(Command.DMA_READ, 0x1000, 4)).error).toBe(EFAULT);
    expect((await server.send(Command.DMA_READ, 0x23ffe, 4)).error).toBe(EFAULT); // runs off the end
    expect((await server.send(Command.DMA_READ, 0x24000, 0x1000)).error).toBe(EFAULT); // the gap before 0x30000
    expect((await server.send(Command.DMA_WRITE, 0x20000, 4, Buffer.from('lost'))).error).toBe(EPERM);
    expect((await server.send(Command.DMA_READ, 0x30000, 4)).error).toBe(EPERM);
    expect((await server.send(Command.DMA_READ, 0x20000, 0x2001)).error).toBe(EINVAL); // over max_data_xfer_size
    expect((await server.send(Command.DMA_WRITE, 0x30000, 8, Buffer.from('four'))).error).toBe(EINVAL); // count and data disagree
    expect((await server.send(Command.DMA_READ, 0x20000, 4, Buffer.from('xx'))).error).toBe(EINVAL); // a read carries no data

    expect(memory.read(0x20000, 4).toString()).toBe('kept');
    const ok = await server.send(Command.DMA_READ, 0x20000, 0x2000);
    expect(ok.error).toBe(0);
    expect(ok.payload.subarray(16, 20).toString()).toBe('kept');
    expect(client.connected).toBe(true);
  });
});
