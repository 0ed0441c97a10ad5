/**
 * Just enough of a vfio-user client to read a device's own config space
 * while no QEMU is attached: VERSION, then REGION_READ of the config region.
 * It shows the device's view of registers that QEMU emulates on its side
 * (MSI-X enable and function mask, for one), which no guest access can.
 *
 * The project's full client lives in lib/; this stays independent of it so
 * that the QEMU tests can check devices whatever state lib/ is in.
 */
import { connect, Socket } from 'node:net';

const HEADER_SIZE = 16;
const CMD_VERSION = 1;
const CMD_REGION_READ = 9;
const FLAG_REPLY = 0x1;
const FLAG_ERROR = 0x20;
/** VFIO_PCI_CONFIG_REGION_INDEX */
export const CONFIG_REGION = 7;

class Connection {
  private data = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private error: Error | undefined;
  private nextId = 1;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.waiter?.();
    });
    const stop = (err: Error): void => {
      this.error ??= err;
      this.waiter?.();
    };
    socket.on('error', stop);
    socket.on('close', () => stop(new Error('vfio-user peek: connection closed')));
  }

  private async take(n: number, timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.data.length < n) {
      if (this.error !== undefined) {
        throw this.error;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error('vfio-user peek: no reply in time');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const out = this.data.subarray(0, n);
    this.data = this.data.subarray(n);
    return out;
  }

  /** Sends a command and returns its reply's payload. */
  async call(command: number, payload: Buffer, timeoutMs = 5000): Promise<Buffer> {
    const id = this.nextId++;
    const header = Buffer.alloc(HEADER_SIZE);
    header.writeUInt16LE(id, 0);
    header.writeUInt16LE(command, 2);
    header.writeUInt32LE(HEADER_SIZE + payload.length, 4);
    this.socket.write(Buffer.concat([header, payload]));
    const reply = await this.take(HEADER_SIZE, timeoutMs);
    const size = reply.readUInt32LE(4);
    const flags = reply.readUInt32LE(8);
    const body = await this.take(size - HEADER_SIZE, timeoutMs);
    if (reply.readUInt16LE(0) !== id || reply.readUInt16LE(2) !== command || (flags & 0xf) !== FLAG_REPLY) {
      throw new Error(`vfio-user peek: unexpected reply to command ${command}`);
    }
    if (flags & FLAG_ERROR) {
      throw new Error(`vfio-user peek: command ${command} failed with errno ${reply.readUInt32LE(12)}`);
    }
    return body;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Connects to a device that has no client, reads `length` bytes of a region
 * (config space by default) and disconnects again. Retries while the device
 * is still busy with its previous client (ECONNREFUSED, or it closes us).
 */
export async function peekRegion(
  socketPath: string,
  offset: number,
  length: number,
  region = CONFIG_REGION,
  timeoutMs = 5000,
): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let conn: Connection | undefined;
    try {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect(socketPath);
        s.once('connect', () => {
          s.removeListener('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
      conn = new Connection(socket);
      const version = Buffer.alloc(4);
      version.writeUInt16LE(0, 0); // major
      version.writeUInt16LE(2, 2); // minor
      await conn.call(CMD_VERSION, version, Math.max(deadline - Date.now(), 200));
      const request = Buffer.alloc(16);
      request.writeBigUInt64LE(BigInt(offset), 0);
      request.writeUInt32LE(region, 8);
      request.writeUInt32LE(length, 12);
      const reply = await conn.call(CMD_REGION_READ, request);
      return Buffer.from(reply.subarray(16, 16 + length));
    } catch (err) {
      if (Date.now() > deadline) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      conn?.close();
    }
  }
}
