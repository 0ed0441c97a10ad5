/**
 * Namespace 1: a file on the host, in 512-byte logical blocks. All file
 * I/O is asynchronous (libuv's thread pool), so the event loop keeps
 * serving while the disk works.
 */
import { open, type FileHandle } from 'node:fs/promises';

/** Bytes per logical block (LBA data size 2^9). */
export const BLOCK_SIZE = 512;
export const BLOCK_SIZE_LOG2 = 9;

/** Largest zero buffer written at once for Write Zeroes and deallocation. */
const ZERO_CHUNK = 1 << 20;

/** The file behind the namespace. */
export class BackingFile {
  private readonly zeros = Buffer.alloc(ZERO_CHUNK);

  private constructor(
    private readonly handle: FileHandle,
    /** Namespace size in logical blocks (the file's size, rounded down to a block). */
    readonly blocks: number,
    /** The file's path. */
    readonly path: string,
  ) {}

  /**
   * Opens `path` for reading and writing.
   *
   * @throws RangeError when the file is smaller than one block
   */
  static async open(path: string): Promise<BackingFile> {
    const handle = await open(path, 'r+');
    const { size } = await handle.stat();
    const blocks = Math.floor(size / BLOCK_SIZE);
    if (blocks === 0) {
      await handle.close();
      throw new RangeError(`${path} is ${size} bytes: a namespace needs at least ${BLOCK_SIZE}`);
    }
    return new BackingFile(handle, blocks, path);
  }

  /** Fills `data` from the file at block `lba`. */
  async read(lba: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesRead } = await this.handle.read(data, done, data.length - done, lba * BLOCK_SIZE + done);
      if (bytesRead === 0) {
        throw new Error(`short read of ${this.path} at block ${lba}`);
      }
      done += bytesRead;
    }
  }

  /** Writes `data` to the file at block `lba`. */
  async write(lba: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, lba * BLOCK_SIZE + done);
      done += bytesWritten;
    }
  }

  /** Writes zeros over `count` blocks from `lba`. */
  async zero(lba: number, count: number): Promise<void> {
    const end = (lba + count) * BLOCK_SIZE;
    for (let at = lba * BLOCK_SIZE; at < end; at += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, end - at);
      await this.handle.write(this.zeros, 0, n, at);
    }
  }

  /** Makes written data durable. */
  async flush(): Promise<void> {
    await this.handle.datasync();
  }

  /** Closes the file. */
  async close(): Promise<void> {
    await this.handle.close();
  }
}
