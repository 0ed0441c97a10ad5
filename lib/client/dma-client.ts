/**
 * The DMA layer of {@link VfioUserClient}: guest memory mapped into the
 * device with DMA_MAP, and the server's DMA_READ / DMA_WRITE messages
 * served from it.
 *
 * @packageDocumentation
 */
import { errorFromCode } from '../errors';
import { checkRange } from './arguments';
import { Command, DmaFlag, readU64, type Message } from './protocol';
import { GuestMemory, type GuestMemoryOptions } from './guest-memory';
import { IoFdClient } from './io-fd-client';

const DMA_MAP_SIZE = 32;
const DMA_UNMAP_SIZE = 24;

/** DMA mapping requests of a {@link VfioUserClient}, and the serving of the device's DMA messages. */
export abstract class DmaClient extends IoFdClient {
  /** Sorted by IOVA; they never overlap (the server refuses an overlapping DMA_MAP). */
  private memories: GuestMemory[] = [];

  /** The guest memory ranges mapped with {@link DmaClient.mapDma}. */
  get dmaMappings(): readonly GuestMemory[] {
    return this.memories;
  }

  /**
   * Creates guest memory at `iova` and maps it into the device with
   * DMA_MAP. Shared memory (the default) is a memfd passed with the
   * message, which the server maps; with `shared: false` the memory stays
   * in this process and the client answers the server's DMA_READ and
   * DMA_WRITE messages from it, as QEMU does for guest RAM that is not
   * shared. The client keeps it until {@link DmaClient.unmapDma} or
   * {@link VfioUserClient.close}.
   */
  async mapDma(options: { iova: number; size: number } & GuestMemoryOptions): Promise<GuestMemory> {
    const memory = new GuestMemory(options.iova, options.size, options);
    const flags = (memory.readable ? DmaFlag.READ : 0) | (memory.writable ? DmaFlag.WRITE : 0);
    const request = Buffer.alloc(DMA_MAP_SIZE);
    request.writeUInt32LE(DMA_MAP_SIZE, 0);
    request.writeUInt32LE(flags, 4);
    request.writeBigUInt64LE(BigInt(options.iova), 16);
    request.writeBigUInt64LE(BigInt(options.size), 24);
    try {
      await this.request(Command.DMA_MAP, request, { fds: memory.fd === undefined ? [] : [memory.fd] });
    } catch (err) {
      memory.close();
      throw err;
    }
    this.memories = [...this.memories, memory].sort((a, b) => a.iova - b.iova);
    return memory;
  }

  /** DMA_UNMAP of a range mapped with {@link DmaClient.mapDma}, then frees it. */
  async unmapDma(memory: GuestMemory): Promise<void> {
    await this.unmapDmaRange(memory.iova, memory.size);
    this.memories = this.memories.filter((m) => m !== memory);
    memory.close();
  }

  /** DMA_UNMAP of any range: the server answers ENOENT unless it is exactly one mapping. */
  async unmapDmaRange(iova: number, size: number): Promise<void> {
    checkRange('DMA_UNMAP', 'iova', iova, Number.MAX_SAFE_INTEGER);
    checkRange('DMA_UNMAP', 'size', size, Number.MAX_SAFE_INTEGER);
    const request = Buffer.alloc(DMA_UNMAP_SIZE);
    request.writeUInt32LE(DMA_UNMAP_SIZE, 0);
    request.writeBigUInt64LE(BigInt(iova), 8);
    request.writeBigUInt64LE(BigInt(size), 16);
    await this.request(Command.DMA_UNMAP, request);
  }

  /**
   * Serves DMA_READ / DMA_WRITE from the guest memory this client mapped, as
   * the specification asks: the range may span adjacent mappings but every
   * byte must be mapped (else EFAULT) with the access allowed (else EPERM),
   * and no message moves more than our max_data_xfer_size (else EINVAL).
   */
  protected serveCommand(message: Message): Buffer {
    const { header, payload } = message;
    const write = header.command === Command.DMA_WRITE;
    if (!write && header.command !== Command.DMA_READ) {
      throw errorFromCode('EINVAL', `server command ${header.command}`);
    }
    const what = write ? 'DMA_WRITE' : 'DMA_READ';
    if (payload.length < 16) {
      throw errorFromCode('EINVAL', what, 'payload shorter than 16 bytes');
    }
    const iova = readU64(payload, 0, what);
    const count = readU64(payload, 8, what);
    if (count > this.maxDataXferSize) {
      throw errorFromCode('EINVAL', what, `${count} bytes is more than the ${this.maxDataXferSize} we take in one message`);
    }
    if (write ? payload.length !== 16 + count : payload.length !== 16) {
      throw errorFromCode('EINVAL', what, `count ${count} with ${payload.length - 16} bytes of data`);
    }
    const pieces = this.guestRange(what, iova, count, write);
    const reply = Buffer.alloc(write ? 16 : 16 + count);
    payload.copy(reply, 0, 0, 16);
    let done = 0;
    for (const { memory, at, length } of pieces) {
      if (write) {
        memory.write(at, payload.subarray(16 + done, 16 + done + length));
      } else {
        memory.view(at, length).copy(reply, 16 + done);
      }
      done += length;
    }
    return reply;
  }

  /** The pieces of `[iova, iova + count)`, one per mapping it crosses; throws EFAULT or EPERM. */
  private guestRange(what: string, iova: number, count: number, write: boolean): Array<{ memory: GuestMemory; at: number; length: number }> {
    const pieces: Array<{ memory: GuestMemory; at: number; length: number }> = [];
    let at = iova;
    const end = iova + count;
    while (at < end || pieces.length === 0) {
      const memory = this.memories.find((m) => m.contains(at, 1));
      if (memory === undefined) {
        throw errorFromCode('EFAULT', what, `0x${at.toString(16)} is not mapped`);
      }
      if (write ? !memory.writable : !memory.readable) {
        throw errorFromCode('EPERM', what, `the mapping at 0x${memory.iova.toString(16)} is ${write ? 'read-only' : 'write-only'}`);
      }
      const length = Math.min(end, memory.iova + memory.size) - at;
      pieces.push({ memory, at, length });
      at += length;
      if (length === 0) {
        break;
      }
    }
    return pieces;
  }

  /** Frees the guest memory, then what the layers below hold; the connection has ended. */
  protected override releaseResources(): void {
    for (const memory of this.memories.splice(0)) {
      memory.close();
    }
    super.releaseResources();
  }
}
