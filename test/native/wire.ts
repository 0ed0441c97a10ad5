/**
 * A deliberately small vfio-user client for the addon's own tests: messages
 * built by hand from the protocol specification and moved with the addon's
 * os helpers (connect, sendmsg, recvmsg, FdWatcher), so that these tests
 * depend on nothing but the native layer.
 */
import { os, type FdWatcher } from '../../lib/native';

export const CMD = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DEVICE_RESET: 13,
} as const;

export const HEADER_SIZE = 16;
const FLAG_REPLY = 0x1;
const FLAG_ERROR = 0x20;

export const IRQ_SET = {
  DATA_NONE: 0x1,
  DATA_BOOL: 0x2,
  DATA_EVENTFD: 0x4,
  ACTION_MASK: 0x8,
  ACTION_UNMASK: 0x10,
  ACTION_TRIGGER: 0x20,
} as const;

/** A reply: its payload, or the errno of an error reply. */
export interface Reply {
  cmd: number;
  errno: number;
  payload: Buffer;
  fds: number[];
}

/** One whole message: header then payload. */
export function message(msgId: number, cmd: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt16LE(msgId, 0);
  header.writeUInt16LE(cmd, 2);
  header.writeUInt32LE(HEADER_SIZE + payload.length, 4);
  header.writeUInt32LE(0, 8);
  header.writeUInt32LE(0, 12);
  return Buffer.concat([header, payload]);
}

export function versionPayload(major = 0, minor = 2, json = '{"capabilities":{"max_msg_fds":8}}'): Buffer {
  const fixed = Buffer.alloc(4);
  fixed.writeUInt16LE(major, 0);
  fixed.writeUInt16LE(minor, 2);
  return Buffer.concat([fixed, Buffer.from(json + '\0')]);
}

export function regionAccessPayload(region: number, offset: number, count: number, data?: Uint8Array): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeBigUInt64LE(BigInt(offset), 0);
  fixed.writeUInt32LE(region, 8);
  fixed.writeUInt32LE(count, 12);
  return data === undefined ? fixed : Buffer.concat([fixed, data]);
}

export function setIrqsPayload(flags: number, index: number, start: number, count: number): Buffer {
  const payload = Buffer.alloc(20);
  payload.writeUInt32LE(20, 0);
  payload.writeUInt32LE(flags, 4);
  payload.writeUInt32LE(index, 8);
  payload.writeUInt32LE(start, 12);
  payload.writeUInt32LE(count, 16);
  return payload;
}

export function dmaMapPayload(flags: number, offset: number, addr: number, size: number): Buffer {
  const payload = Buffer.alloc(32);
  payload.writeUInt32LE(32, 0);
  payload.writeUInt32LE(flags, 4);
  payload.writeBigUInt64LE(BigInt(offset), 8);
  payload.writeBigUInt64LE(BigInt(addr), 16);
  payload.writeBigUInt64LE(BigInt(size), 24);
  return payload;
}

export function dmaUnmapPayload(addr: number, size: number): Buffer {
  const payload = Buffer.alloc(24);
  payload.writeUInt32LE(24, 0);
  payload.writeUInt32LE(0, 4);
  payload.writeBigUInt64LE(BigInt(addr), 8);
  payload.writeBigUInt64LE(BigInt(size), 16);
  return payload;
}

interface Waiter {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

/** A connection to a device: requests in, replies matched by message id. */
export class WireClient {
  private readonly watcher: FdWatcher;
  private buffer = Buffer.alloc(1 << 21);
  private received = 0;
  private receivedFds: number[] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private closedResolve!: () => void;
  /** Resolves when the device closes the connection. */
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly fd: number) {
    this.closed = new Promise((resolve) => (this.closedResolve = resolve));
    this.watcher = new os.FdWatcher(fd, (readable, _writable, error) => {
      if (readable || error !== 0) {
        this.receive();
      }
    });
    this.watcher.start(true, false);
  }

  /** Connects without negotiating. */
  static open(path: string): WireClient {
    return new WireClient(os.connect(path));
  }

  /** Connects and negotiates the protocol version. */
  static async connect(path: string): Promise<WireClient> {
    const client = WireClient.open(path);
    const reply = await client.request(CMD.VERSION, versionPayload());
    if (reply.errno !== 0) {
      throw new Error(`VERSION failed: errno ${reply.errno}`);
    }
    return client;
  }

  /** Sends raw bytes (all of them: the messages of these tests are small). */
  sendRaw(bytes: Uint8Array, fds: number[] = []): void {
    let sent = 0;
    while (sent < bytes.length) {
      sent += os.sendmsg(this.fd, [bytes.subarray(sent)], sent === 0 ? fds : []);
    }
  }

  /** Allocates a message id and waits for its reply. */
  expectReply(msgId: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.isClosed) {
        reject(new Error('connection closed'));
        return;
      }
      this.waiters.set(msgId, { resolve, reject });
    });
  }

  newId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff;
    return id;
  }

  request(cmd: number, payload: Uint8Array, fds: number[] = []): Promise<Reply> {
    const id = this.newId();
    const reply = this.expectReply(id);
    this.sendRaw(message(id, cmd, payload), fds);
    return reply;
  }

  async read(region: number, offset: number, count: number): Promise<Buffer> {
    const reply = await this.request(CMD.REGION_READ, regionAccessPayload(region, offset, count));
    if (reply.errno !== 0) {
      throw Object.assign(new Error(`REGION_READ failed: errno ${reply.errno}`), { errno: reply.errno });
    }
    return reply.payload.subarray(16);
  }

  async write(region: number, offset: number, data: Uint8Array): Promise<number> {
    const reply = await this.request(CMD.REGION_WRITE, regionAccessPayload(region, offset, data.length, data));
    return reply.errno;
  }

  close(): void {
    if (!this.isClosed) {
      this.finish();
      os.close(this.fd);
    }
  }

  private finish(): void {
    this.isClosed = true;
    this.watcher.close();
    for (const fd of this.receivedFds) {
      os.close(fd);
    }
    this.receivedFds = [];
    for (const waiter of this.waiters.values()) {
      waiter.reject(new Error('connection closed'));
    }
    this.waiters.clear();
    this.closedResolve();
  }

  private receive(): void {
    for (;;) {
      if (this.isClosed) {
        return;
      }
      const result = os.recvmsg(this.fd, this.buffer, this.received);
      if (result === null) {
        return;
      }
      if (result.bytes === 0) {
        this.finish();
        return;
      }
      this.received += result.bytes;
      this.receivedFds.push(...result.fds);
      this.dispatch();
    }
  }

  private dispatch(): void {
    while (this.received >= HEADER_SIZE) {
      const size = this.buffer.readUInt32LE(4);
      if (this.received < size) {
        return;
      }
      const id = this.buffer.readUInt16LE(0);
      const flags = this.buffer.readUInt32LE(8);
      const reply: Reply = {
        cmd: this.buffer.readUInt16LE(2),
        errno: flags & FLAG_ERROR ? this.buffer.readUInt32LE(12) : 0,
        payload: Buffer.from(this.buffer.subarray(HEADER_SIZE, size)),
        fds: this.receivedFds,
      };
      this.receivedFds = [];
      this.buffer.copy(this.buffer, 0, size, this.received);
      this.received -= size;
      const waiter = this.waiters.get(id);
      if ((flags & 0xf) === FLAG_REPLY && waiter !== undefined) {
        this.waiters.delete(id);
        waiter.resolve(reply);
      } else {
        reply.fds.forEach((fd) => os.close(fd));
      }
    }
  }
}

/** Resolves after the event loop has turned (for events that arrive later). */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until predicate() holds, polling; fails after timeoutMs. */
export async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error('timed out waiting for a condition');
    }
    await tick(2);
  }
}
