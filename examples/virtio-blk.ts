/**
 * virtio-blk (virtio block device, spec 5.2) backed by a file: the
 * capacity is the file's size, rounded down to 512-byte sectors. It serves
 * VIRTIO_BLK_T_IN, OUT, FLUSH and GET_ID with asynchronous file I/O, so
 * requests overlap and complete in whatever order the file system finishes
 * them; with shared guest memory the file is read into and written from
 * the driver's buffers directly. An I/O error reaches the driver as
 * VIRTIO_BLK_S_IOERR. Linux's `virtio_blk` binds to it as /dev/vda.
 *
 * Serve it with
 * `VIRTIO_BLK_FILE=disk.img npx vfio-user serve examples/virtio-blk.ts --socket /tmp/blk.sock`
 * (`VIRTIO_BLK_READONLY=1` for a read-only disk, `VIRTIO_BLK_QUEUES=N` for N queues).
 */
import { closeSync, fdatasync, fstatSync, openSync, readv, writev } from 'node:fs';
import { promisify } from 'node:util';

import { VirtioDevice, VirtioDeviceType, type Virtqueue, type VirtqueueRequest } from 'vfio-user/virtio';

/** Request types (`type` in the request header). */
export const VirtioBlkType = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const;

/** Status byte values. */
export const VirtioBlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** Feature bits of the block device. */
export const VirtioBlkFeature = { SIZE_MAX: 1, SEG_MAX: 2, RO: 5, BLK_SIZE: 6, FLUSH: 9, MQ: 12 } as const;

/** Offsets in the block device's configuration. */
export const VirtioBlkConfig = { CAPACITY: 0, SIZE_MAX: 8, SEG_MAX: 12, BLK_SIZE: 20, NUM_QUEUES: 34, SIZE: 36 } as const;

export const SECTOR_SIZE = 512;
/** Bytes of the identification string GET_ID returns. */
export const VIRTIO_BLK_ID_BYTES = 20;
const HEADER_SIZE = 16;

/** How the disk is made. */
export interface VirtioBlkOptions {
  /** The backing file. */
  readonly path: string;
  /** Refuse writes (the driver sees VIRTIO_BLK_F_RO). */
  readonly readOnly?: boolean;
  /** Request queues (default 1; more offer VIRTIO_BLK_F_MQ). */
  readonly queues?: number;
  /** Entries per queue (default 256). */
  readonly queueSize?: number;
  /** Largest data segment in bytes, advertised as size_max (default 1 MiB). */
  readonly sizeMax?: number;
  /** The identification string for GET_ID (default "vfio-user-blk"). */
  readonly serial?: string;
}

const readvAsync = promisify(readv);
const writevAsync = promisify(writev);
const fdatasyncAsync = promisify(fdatasync);

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** The block device. */
export class VirtioBlk extends VirtioDevice {
  /** Size of the disk in bytes (whole sectors). */
  readonly capacity: number;
  readonly readOnly: boolean;
  /** Requests served, by type, and those that failed with IOERR. */
  readonly counts = { in: 0, out: 0, flush: 0, getId: 0, ioErrors: 0, unsupported: 0 };
  readonly #fd: number;
  readonly #serial: Buffer;

  constructor(options: VirtioBlkOptions) {
    const readOnly = options.readOnly ?? false;
    const queues = options.queues ?? 1;
    const queueSize = options.queueSize ?? 256;
    const sizeMax = options.sizeMax ?? 1 << 20;
    const features = bit(VirtioBlkFeature.SIZE_MAX) | bit(VirtioBlkFeature.SEG_MAX) | bit(VirtioBlkFeature.BLK_SIZE) |
      bit(VirtioBlkFeature.FLUSH) | (readOnly ? bit(VirtioBlkFeature.RO) : 0n) | (queues > 1 ? bit(VirtioBlkFeature.MQ) : 0n);
    super({ type: VirtioDeviceType.BLOCK, queues, queueSize, features, configSize: VirtioBlkConfig.SIZE, classCode: 0x010000 });
    const fd = openSync(options.path, readOnly ? 'r' : 'r+');
    try {
      this.capacity = Math.floor(fstatSync(fd).size / SECTOR_SIZE) * SECTOR_SIZE;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.#fd = fd;
    this.readOnly = readOnly;
    this.#serial = Buffer.alloc(VIRTIO_BLK_ID_BYTES);
    this.#serial.write(options.serial ?? 'vfio-user-blk', 'latin1');
    this.config.writeBigUInt64LE(BigInt(this.capacity / SECTOR_SIZE), VirtioBlkConfig.CAPACITY);
    this.config.writeUInt32LE(sizeMax, VirtioBlkConfig.SIZE_MAX);
    // Two descriptors of every chain are the header and the status byte.
    this.config.writeUInt32LE(queueSize - 2, VirtioBlkConfig.SEG_MAX);
    this.config.writeUInt32LE(SECTOR_SIZE, VirtioBlkConfig.BLK_SIZE);
    this.config.writeUInt16LE(queues, VirtioBlkConfig.NUM_QUEUES);
  }

  /** Closes the backing file. */
  close(): void {
    closeSync(this.#fd);
  }

  override async onRequest(queue: Virtqueue, request: VirtqueueRequest): Promise<void> {
    void queue;
    if (request.readableLength < HEADER_SIZE || request.writableLength < 1) {
      throw new Error(`a block request needs a 16-byte header and a status byte, not ${request.readableLength} readable and ${request.writableLength} writable bytes`);
    }
    const header = await request.read(0, HEADER_SIZE);
    const type = header.readUInt32LE(0);
    const sector = header.readBigUInt64LE(8);
    const dataIn = request.writableLength - 1;
    let written = 0;
    let status: number = VirtioBlkStatus.OK;
    try {
      switch (type) {
        case VirtioBlkType.IN:
          this.counts.in++;
          written = await this.#read(request, sector, dataIn);
          break;
        case VirtioBlkType.OUT:
          this.counts.out++;
          await this.#write(request, sector, request.readableLength - HEADER_SIZE);
          break;
        case VirtioBlkType.FLUSH:
          this.counts.flush++;
          if (!this.readOnly) {
            await fdatasyncAsync(this.#fd);
          }
          break;
        case VirtioBlkType.GET_ID:
          this.counts.getId++;
          written = Math.min(dataIn, VIRTIO_BLK_ID_BYTES);
          await request.write(this.#serial.subarray(0, written));
          break;
        default:
          this.counts.unsupported++;
          status = VirtioBlkStatus.UNSUPP;
      }
    } catch (err) {
      if (!(err instanceof BlockIoError) && (err as NodeJS.ErrnoException).syscall === undefined) {
        throw err; // guest memory went away: the transport marks NEEDS_RESET
      }
      this.counts.ioErrors++;
      status = VirtioBlkStatus.IOERR;
      written = 0;
    }
    await request.write(Buffer.from([status]), request.writableLength - 1);
    request.complete(written + 1);
  }

  /** Where `length` bytes at `sector` are in the file; throws BlockIoError outside the disk. */
  #position(sector: bigint, length: number): number {
    const position = sector * BigInt(SECTOR_SIZE);
    if (length % SECTOR_SIZE !== 0 || position + BigInt(length) > BigInt(this.capacity)) {
      throw new BlockIoError(`${length} bytes at sector ${sector} are outside the ${this.capacity}-byte disk or not whole sectors`);
    }
    return Number(position);
  }

  async #read(request: VirtqueueRequest, sector: bigint, length: number): Promise<number> {
    const position = this.#position(sector, length);
    const views = request.views('writable');
    if (views !== undefined) {
      await readFully(this.#fd, withoutLastByte(views), position, length);
    } else {
      const data = Buffer.alloc(length);
      await readFully(this.#fd, [data], position, length);
      await request.write(data);
    }
    return length;
  }

  async #write(request: VirtqueueRequest, sector: bigint, length: number): Promise<void> {
    if (this.readOnly) {
      throw new BlockIoError('the disk is read-only');
    }
    const position = this.#position(sector, length);
    const views = request.views('readable');
    const buffers = views !== undefined ? skipBytes(views, HEADER_SIZE) : [await request.read(HEADER_SIZE, length)];
    let done = 0;
    while (done < length) {
      const n = (await writevAsync(this.#fd, skipBytes(buffers, done), position + done)).bytesWritten;
      if (n <= 0) {
        throw new BlockIoError('the backing file took no bytes');
      }
      done += n;
    }
  }
}

/** A request outside what the disk can do: the driver gets IOERR. */
class BlockIoError extends Error {}

async function readFully(fd: number, buffers: Buffer[], position: number, length: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = (await readvAsync(fd, skipBytes(buffers, done), position + done)).bytesRead;
    if (n <= 0) {
      throw new BlockIoError('the backing file ended early');
    }
    done += n;
  }
}

/** The buffers without their first `n` bytes. */
function skipBytes(buffers: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip === 0 ? b : b.subarray(skip));
    skip = 0;
  }
  return out;
}

/** The writable views without the status byte at the very end. */
function withoutLastByte(views: readonly Buffer[]): Buffer[] {
  const out = views.slice();
  const last = out.pop()!;
  if (last.length > 1) {
    out.push(last.subarray(0, last.length - 1));
  }
  return out;
}

/** For the CLI: the file in VIRTIO_BLK_FILE, read-only with VIRTIO_BLK_READONLY=1, VIRTIO_BLK_QUEUES queues. */
export default function create(): VirtioBlk {
  const path = process.env.VIRTIO_BLK_FILE;
  if (path === undefined || path === '') {
    throw new Error('set VIRTIO_BLK_FILE to the backing file');
  }
  return new VirtioBlk({ path, readOnly: process.env.VIRTIO_BLK_READONLY === '1', queues: Number(process.env.VIRTIO_BLK_QUEUES ?? 1) });
}
