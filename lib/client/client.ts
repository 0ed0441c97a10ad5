/**
 * `VfioUserClient`: the client side of vfio-user (what QEMU is), written from
 * the protocol specification, to test devices without a VM.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';

import { CapabilityId, irqIndexOf, Msi, Msix, PciCommand, PciConfig, PciStatus, Region, type InterruptKind } from '../constants';
import { errorFromCode, MigrationTransitionError, OptionsError, ProtocolError, VfioUserError } from '../errors';
import type { MigrationState } from '../migration';
import { os } from '../native';
import { Channel, type RequestOptions } from './channel';
import { GuestMemory, type GuestMemoryOptions } from './guest-memory';
import { InterruptLine } from './interrupt-line';
import {
  decodeDataRead,
  decodeLoggingReport,
  decodeMigrationFlags,
  DeviceFeature,
  encodeDataRead,
  encodeDataWrite,
  encodeDeviceState,
  encodeFeature,
  encodeLoggingReport,
  encodeLoggingStart,
  FEATURE_HEADER_SIZE,
  FeatureFlag,
  bitmapSize,
  MigrationFlag,
  stateOfWire,
  wireState,
  type DirtyRange,
  type DirtyReport,
} from './migration-protocol';
import {
  Command,
  decodeVersion,
  DEFAULT_CAPABILITIES,
  DeviceInfoFlag,
  DmaFlag,
  encodeRegionAccess,
  encodeU32s,
  encodeVersion,
  IrqSetFlag,
  readU64,
  REGION_INFO_CAP_SPARSE_MMAP,
  RegionInfoFlag,
  type Message,
  type ServerCapabilities,
} from './protocol';

/** Options of {@link VfioUserClient.connect}. */
export interface VfioUserClientOptions {
  /** Milliseconds to wait for each reply (default 5000; 0 waits forever). */
  readonly timeout?: number;
  /** Protocol minor version to propose (default 2). */
  readonly minor?: number;
  /** Most file descriptors we take in one message (default 8). */
  readonly maxMsgFds?: number;
  /** Most bytes per data message we take (default 1 MiB). */
  readonly maxDataXferSize?: number;
  /**
   * Offer a twin socket (default false): if the server grants it, its
   * DMA_READ / DMA_WRITE come on a socket of their own.
   */
  readonly twinSocket?: boolean;
}

/** Events of a {@link VfioUserClient}. */
export interface VfioUserClientEvents {
  /** The connection ended, with why (the server went away, or {@link VfioUserClient.close}). */
  close: [reason: Error];
}

/** The reply to DEVICE_GET_INFO. */
export interface DeviceInfo {
  /** Raw flags. */
  readonly flags: number;
  /** The device supports DEVICE_RESET. */
  readonly canReset: boolean;
  /** A PCI device. */
  readonly isPci: boolean;
  /** Number of regions. */
  readonly numRegions: number;
  /** Number of IRQ types. */
  readonly numIrqs: number;
}

/** An area of a region the client may mmap. */
export interface SparseMmapArea {
  /** Offset in the region. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
}

/** The reply to DEVICE_GET_REGION_INFO. */
export interface RegionInfo {
  /** Region index. */
  readonly index: number;
  /** Raw flags. */
  readonly flags: number;
  /** The region can be read. */
  readonly readable: boolean;
  /** The region can be written. */
  readonly writable: boolean;
  /** The region can be mmapped through {@link RegionInfo.fd}. */
  readonly mappable: boolean;
  /** Size in bytes (0: the region does not exist). */
  readonly size: number;
  /** Offset to give mmap. */
  readonly offset: number;
  /** The areas that may be mmapped, when the server lists them. */
  readonly sparseAreas: readonly SparseMmapArea[];
  /** The fd to mmap, when the region is mappable; the caller owns it and must close it. */
  readonly fd?: number;
}

/** The reply to DEVICE_GET_IRQ_INFO. */
export interface IrqInfo {
  /** IRQ index. */
  readonly index: number;
  /** Raw flags (VFIO_IRQ_INFO_*). */
  readonly flags: number;
  /** Number of vectors. */
  readonly count: number;
}

/** What the MIGRATION feature says the device supports. */
export interface MigrationFeatures {
  /** Raw flags (VFIO_MIGRATION_*). */
  readonly flags: number;
  /** STOP_COPY: the device migrates. */
  readonly stopCopy: boolean;
  /** PRE_COPY: data can be read while the device runs. */
  readonly preCopy: boolean;
}

/** A raw reply: its header and payload, and any fds (the caller owns them). */
export type VfioUserReply = Message;

/** One write of {@link VfioUserClient.writeRegionMulti}: at most 8 bytes. */
export interface MultiWrite {
  /** Region index. */
  readonly region: number;
  /** Offset in the region. */
  readonly offset: number;
  /** 1 to 8 bytes. */
  readonly data: Uint8Array;
}

const DEFAULT_TIMEOUT = 5000;
const REGION_INFO_SIZE = 32;
const IRQ_SET_SIZE = 20;
const DMA_MAP_SIZE = 32;
const DMA_UNMAP_SIZE = 24;
const MULTI_WRITE_ENTRY = 24;

/**
 * The twin socket a VERSION reply grants, if any; the reply's other fds are
 * closed. A grant we did not ask for, or one whose fd is missing, is a
 * protocol error (the spec asks the client to give up then).
 */
function takeTwinSocket(reply: VfioUserReply, asked: boolean): number | undefined {
  let index: number | undefined;
  try {
    index = decodeVersion(reply.payload).capabilities.twinSocketFdIndex;
  } catch {
    index = undefined; // the caller reports the malformed reply
  }
  const fd = index !== undefined ? reply.fds[index] : undefined;
  reply.fds.forEach((other) => other !== fd && os.close(other));
  if (index !== undefined && (fd === undefined || !asked)) {
    if (fd !== undefined) {
      os.close(fd);
    }
    throw new ProtocolError('VERSION', asked ? `twin socket fd_index ${index} names no fd of the reply` : 'a twin socket we did not ask for');
  }
  return fd;
}

function irqIndex(kind: InterruptKind | number): number {
  return typeof kind === 'number' ? kind : irqIndexOf(kind);
}

function checkRange(name: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, not ${value}`);
  }
}

/**
 * A vfio-user client: connects to a device's socket, negotiates, and then
 * reads and writes its regions and config space, maps guest memory for DMA,
 * receives its interrupts, and resets it. Every method sends one message
 * (SET_IRQS with more eventfds than the server takes at once excepted).
 *
 * @example
 * ```ts
 * const client = await VfioUserClient.connect('/run/timer.sock');
 * await client.write32(0, 0x0, 1);
 * const [irq] = await client.enableInterrupts('msix');
 * await irq.wait();
 * await client.close();
 * ```
 */
export class VfioUserClient extends EventEmitter<VfioUserClientEvents> {
  /** Negotiated version. */
  readonly version: { readonly major: number; readonly minor: number };
  /** What the server said it supports. */
  readonly serverCapabilities: ServerCapabilities;
  /** Most bytes of data one DMA_READ / DMA_WRITE from the server may move (what we told it). */
  readonly maxDataXferSize: number;
  private readonly channel: Channel;
  /** The server's commands, when it granted a twin socket. */
  private twin: Channel | undefined;
  /** Sorted by IOVA; they never overlap (the server refuses an overlapping DMA_MAP). */
  private memories: GuestMemory[] = [];
  private readonly lines = new Map<string, InterruptLine>();
  private knownState: MigrationState | undefined;

  private constructor(channel: Channel, version: { major: number; minor: number }, capabilities: ServerCapabilities, maxDataXferSize: number) {
    super();
    this.channel = channel;
    this.version = version;
    this.serverCapabilities = capabilities;
    this.maxDataXferSize = maxDataXferSize;
  }

  /**
   * Connects to the socket and negotiates the version and capabilities.
   *
   * @throws {@link VfioUserError} ENOENT / ECONNREFUSED when nothing listens, or the server's errno
   * @throws {@link ProtocolError} when the server's VERSION reply is malformed or incompatible
   */
  static async connect(socket: string, options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new OptionsError('timeout', `must be a non-negative number of milliseconds, not ${timeout}`);
    }
    const minor = options.minor ?? 2;
    const maxDataXferSize = options.maxDataXferSize ?? DEFAULT_CAPABILITIES.maxDataXferSize;
    if (!Number.isSafeInteger(maxDataXferSize) || maxDataXferSize < 1) {
      throw new OptionsError('maxDataXferSize', `must be a positive integer, not ${maxDataXferSize}`);
    }
    let fd: number;
    try {
      fd = os.connect(socket);
    } catch (err) {
      const { errno } = err as { errno?: unknown };
      throw typeof errno === 'number' ? new VfioUserError(errno, 'connect', socket) : err;
    }
    let client: VfioUserClient | undefined;
    const channel = new Channel(
      fd,
      timeout,
      (message) => {
        if (client === undefined) {
          throw errorFromCode('EINVAL', 'command before negotiation');
        }
        return client.serveCommand(message);
      },
      (reason) => client?.onChannelClosed(reason),
    );
    try {
      const reply = await channel.request(
        Command.VERSION,
        encodeVersion(0, minor, {
          max_msg_fds: options.maxMsgFds ?? 8,
          max_data_xfer_size: maxDataXferSize,
          ...(options.twinSocket === true ? { twin_socket: { supported: true } } : {}),
        }),
      );
      const twinFd = takeTwinSocket(reply, options.twinSocket === true);
      let decoded: ReturnType<typeof decodeVersion>;
      try {
        decoded = decodeVersion(reply.payload);
        if (decoded.major !== 0 || decoded.minor > minor) {
          throw new ProtocolError('VERSION', `server answered version ${decoded.major}.${decoded.minor} to our 0.${minor}`);
        }
      } catch (err) {
        if (twinFd !== undefined) {
          os.close(twinFd);
        }
        throw err;
      }
      const created = new VfioUserClient(channel, { major: decoded.major, minor: decoded.minor }, decoded.capabilities, maxDataXferSize);
      client = created;
      if (twinFd !== undefined) {
        created.twin = new Channel(
          twinFd,
          timeout,
          (message) => created.serveCommand(message),
          (reason) => channel.close(reason),
        );
      }
      return client;
    } catch (err) {
      channel.close();
      throw err;
    }
  }

  /** True until the connection ends. */
  get connected(): boolean {
    return this.channel.open;
  }

  /** The guest memory ranges mapped with {@link VfioUserClient.mapDma}. */
  get dmaMappings(): readonly GuestMemory[] {
    return this.memories;
  }

  /**
   * Sends any command with any payload and resolves with the raw reply: for
   * what the typed methods do not cover, and for sending malformed requests.
   */
  async request(command: number, payload: Uint8Array = new Uint8Array(0), options: RequestOptions = {}): Promise<VfioUserReply> {
    return this.channel.request(command, payload, options);
  }

  /** DEVICE_GET_INFO. */
  async getDeviceInfo(): Promise<DeviceInfo> {
    const { payload } = await this.request(Command.DEVICE_GET_INFO, encodeU32s(16, 0, 0, 0));
    this.expectLength('DEVICE_GET_INFO', payload, 16);
    const flags = payload.readUInt32LE(4);
    return {
      flags,
      canReset: (flags & DeviceInfoFlag.RESET) !== 0,
      isPci: (flags & DeviceInfoFlag.PCI) !== 0,
      numRegions: payload.readUInt32LE(8),
      numIrqs: payload.readUInt32LE(12),
    };
  }

  /** DEVICE_GET_REGION_INFO, asking again with room for the capabilities when there are some. */
  async getRegionInfo(index: number): Promise<RegionInfo> {
    checkRange('region', index, 0xffffffff);
    let argsz = REGION_INFO_SIZE;
    for (;;) {
      const request = Buffer.alloc(REGION_INFO_SIZE);
      request.writeUInt32LE(argsz, 0);
      request.writeUInt32LE(index, 8);
      const { payload, fds } = await this.request(Command.DEVICE_GET_REGION_INFO, request);
      this.expectLength('DEVICE_GET_REGION_INFO', payload, REGION_INFO_SIZE);
      const needed = payload.readUInt32LE(0);
      if (needed > argsz && payload.length < needed) {
        fds.forEach((fd) => os.close(fd));
        argsz = needed;
        continue;
      }
      return this.parseRegionInfo(payload, fds);
    }
  }

  /** DEVICE_GET_IRQ_INFO for an interrupt kind or a raw IRQ index (3 ERR, 4 REQ). */
  async getIrqInfo(kind: InterruptKind | number): Promise<IrqInfo> {
    const index = irqIndex(kind);
    const { payload } = await this.request(Command.DEVICE_GET_IRQ_INFO, encodeU32s(16, 0, index, 0));
    this.expectLength('DEVICE_GET_IRQ_INFO', payload, 16);
    return { flags: payload.readUInt32LE(4), index: payload.readUInt32LE(8), count: payload.readUInt32LE(12) };
  }

  /** REGION_READ of `count` bytes at `offset`, in one message. */
  async readRegion(region: number, offset: number, count: number): Promise<Buffer> {
    checkRange('region', region, 0xffffffff);
    checkRange('count', count, 0xffffffff);
    const { payload } = await this.request(Command.REGION_READ, encodeRegionAccess(region, offset, count));
    this.expectLength('REGION_READ', payload, 16);
    const got = payload.readUInt32LE(12);
    if (got !== count || payload.length !== 16 + count) {
      throw new ProtocolError('REGION_READ', `asked for ${count} bytes, the reply has ${got} (${payload.length - 16} sent)`);
    }
    return payload.subarray(16);
  }

  /** REGION_WRITE of `data` at `offset`, in one message. */
  async writeRegion(region: number, offset: number, data: Uint8Array): Promise<void> {
    checkRange('region', region, 0xffffffff);
    const { payload } = await this.request(
      Command.REGION_WRITE,
      Buffer.concat([encodeRegionAccess(region, offset, data.length), data]),
    );
    this.expectLength('REGION_WRITE', payload, 16);
    if (payload.readUInt32LE(12) !== data.length) {
      throw new ProtocolError('REGION_WRITE', `wrote ${data.length} bytes, the reply says ${payload.readUInt32LE(12)}`);
    }
  }

  /** REGION_WRITE_MULTI: several writes of up to 8 bytes in one message; resolves with the count done. */
  async writeRegionMulti(writes: readonly MultiWrite[]): Promise<number> {
    const body = Buffer.alloc(8 + MULTI_WRITE_ENTRY * writes.length);
    body.writeBigUInt64LE(BigInt(writes.length), 0);
    writes.forEach((w, i) => {
      if (w.data.length < 1 || w.data.length > 8) {
        throw new RangeError(`writes[${i}] has ${w.data.length} bytes; REGION_WRITE_MULTI takes 1 to 8`);
      }
      const at = 8 + MULTI_WRITE_ENTRY * i;
      encodeRegionAccess(w.region, w.offset, w.data.length).copy(body, at);
      body.set(w.data, at + 16);
    });
    const { payload } = await this.request(Command.REGION_WRITE_MULTI, body);
    this.expectLength('REGION_WRITE_MULTI', payload, 8);
    return readU64(payload, 0, 'REGION_WRITE_MULTI');
  }

  /** Reads a BAR: {@link VfioUserClient.readRegion} on region `bar`. */
  readBar(bar: number, offset: number, count: number): Promise<Buffer> {
    checkRange('bar', bar, 5);
    return this.readRegion(bar, offset, count);
  }

  /** Writes a BAR: {@link VfioUserClient.writeRegion} on region `bar`. */
  writeBar(bar: number, offset: number, data: Uint8Array): Promise<void> {
    checkRange('bar', bar, 5);
    return this.writeRegion(bar, offset, data);
  }

  /** Reads config space, any size at any offset, in one message. */
  readConfig(offset: number, count: number): Promise<Buffer> {
    return this.readRegion(Region.CONFIG, offset, count);
  }

  /** Writes config space, any size at any offset, in one message. */
  writeConfig(offset: number, data: Uint8Array): Promise<void> {
    return this.writeRegion(Region.CONFIG, offset, data);
  }

  /** Reads one byte of a region. */
  async read8(region: number, offset: number): Promise<number> {
    return (await this.readRegion(region, offset, 1))[0];
  }

  /** Reads a 16-bit little-endian value. */
  async read16(region: number, offset: number): Promise<number> {
    return (await this.readRegion(region, offset, 2)).readUInt16LE(0);
  }

  /** Reads a 32-bit little-endian value. */
  async read32(region: number, offset: number): Promise<number> {
    return (await this.readRegion(region, offset, 4)).readUInt32LE(0);
  }

  /** Reads a 64-bit little-endian value. */
  async read64(region: number, offset: number): Promise<bigint> {
    return (await this.readRegion(region, offset, 8)).readBigUInt64LE(0);
  }

  /** Writes one byte. */
  write8(region: number, offset: number, value: number): Promise<void> {
    const b = Buffer.alloc(1);
    b.writeUInt8(value & 0xff, 0);
    return this.writeRegion(region, offset, b);
  }

  /** Writes a 16-bit little-endian value. */
  write16(region: number, offset: number, value: number): Promise<void> {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value & 0xffff, 0);
    return this.writeRegion(region, offset, b);
  }

  /** Writes a 32-bit little-endian value. */
  write32(region: number, offset: number, value: number): Promise<void> {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    return this.writeRegion(region, offset, b);
  }

  /** Writes a 64-bit little-endian value. */
  write64(region: number, offset: number, value: bigint): Promise<void> {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, value), 0);
    return this.writeRegion(region, offset, b);
  }

  /**
   * Creates guest memory at `iova` and maps it into the device with
   * DMA_MAP. Shared memory (the default) is a memfd passed with the
   * message, which the server maps; with `shared: false` the memory stays
   * in this process and the client answers the server's DMA_READ and
   * DMA_WRITE messages from it, as QEMU does for guest RAM that is not
   * shared. The client keeps it until {@link VfioUserClient.unmapDma} or
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

  /** DMA_UNMAP of a range mapped with {@link VfioUserClient.mapDma}, then frees it. */
  async unmapDma(memory: GuestMemory): Promise<void> {
    await this.unmapDmaRange(memory.iova, memory.size);
    this.memories = this.memories.filter((m) => m !== memory);
    memory.close();
  }

  /** DMA_UNMAP of any range: the server answers ENOENT unless it is exactly one mapping. */
  async unmapDmaRange(iova: number, size: number): Promise<void> {
    const request = Buffer.alloc(DMA_UNMAP_SIZE);
    request.writeUInt32LE(DMA_UNMAP_SIZE, 0);
    request.writeBigUInt64LE(BigInt(iova), 8);
    request.writeBigUInt64LE(BigInt(size), 16);
    await this.request(Command.DMA_UNMAP, request);
  }

  /**
   * Installs eventfds for vectors `start` to `start + count - 1` of an
   * interrupt type (SET_IRQS, ACTION_TRIGGER | DATA_EVENTFD), replacing lines
   * installed before, and resolves with one {@link InterruptLine} per vector.
   * Messages carry no more eventfds than the server takes at once.
   *
   * Then, unless `configure` is false, it turns the interrupt type on in
   * config space as a driver would: MSI-X Enable (function unmasked), MSI
   * Enable with enough vectors, or INTx-disable cleared.
   */
  async enableInterrupts(
    kind: InterruptKind,
    options: { start?: number; count?: number; configure?: boolean } = {},
  ): Promise<InterruptLine[]> {
    const index = irqIndex(kind);
    const start = options.start ?? 0;
    const count = options.count ?? (await this.getIrqInfo(index)).count - start;
    if (count <= 0) {
      throw new RangeError(`no ${kind} vectors to enable from ${start}`);
    }
    const lines: InterruptLine[] = [];
    try {
      for (let v = start; v < start + count; v++) {
        lines.push(new InterruptLine(kind, v));
      }
      const perMessage = Math.max(1, this.serverCapabilities.maxMsgFds);
      for (let first = 0; first < count; first += perMessage) {
        const batch = lines.slice(first, first + perMessage);
        await this.request(
          Command.DEVICE_SET_IRQS,
          encodeU32s(IRQ_SET_SIZE, IrqSetFlag.ACTION_TRIGGER | IrqSetFlag.DATA_EVENTFD, index, start + first, batch.length),
          { fds: batch.map((line) => line.fd) },
        );
      }
      if (options.configure !== false) {
        await this.configureInterrupts(kind, start + count);
      }
    } catch (err) {
      lines.forEach((line) => line.close());
      throw err;
    }
    for (const line of lines) {
      const key = `${index}:${line.vector}`;
      this.lines.get(key)?.close();
      this.lines.set(key, line);
    }
    return lines;
  }

  /**
   * Offset of the first standard capability with ID `id` (see
   * {@link CapabilityId}) in config space, walking the list as a driver
   * does; undefined when there is none.
   */
  async findCapability(id: number): Promise<number | undefined> {
    const status = await this.read16(Region.CONFIG, PciConfig.STATUS);
    if ((status & PciStatus.CAP_LIST) === 0) {
      return undefined;
    }
    const seen = new Set<number>();
    let at = (await this.read8(Region.CONFIG, PciConfig.CAPABILITY_LIST)) & ~3;
    while (at !== 0 && !seen.has(at)) {
      seen.add(at);
      const [capId, next] = await this.readConfig(at, 2);
      if (capId === id) {
        return at;
      }
      at = next & ~3;
    }
    return undefined;
  }

  /** Turns an interrupt type on in config space; see {@link VfioUserClient.enableInterrupts}. */
  private async configureInterrupts(kind: InterruptKind, vectors: number): Promise<void> {
    if (kind === 'intx') {
      const command = await this.read16(Region.CONFIG, PciConfig.COMMAND);
      await this.write16(Region.CONFIG, PciConfig.COMMAND, command & ~PciCommand.INTX_DISABLE);
      return;
    }
    const cap = await this.findCapability(kind === 'msix' ? CapabilityId.MSIX : CapabilityId.MSI);
    if (cap === undefined) {
      return;
    }
    const flags = await this.read16(Region.CONFIG, cap + Msix.FLAGS);
    if (kind === 'msix') {
      await this.write16(Region.CONFIG, cap + Msix.FLAGS, (flags & ~Msix.FLAGS_MASKALL) | Msix.FLAGS_ENABLE);
      return;
    }
    const capable = (flags & Msi.FLAGS_QMASK) >> 1;
    const enabled = Math.min(capable, Math.ceil(Math.log2(vectors)));
    await this.write16(Region.CONFIG, cap + Msi.FLAGS, (flags & ~Msi.FLAGS_QSIZE) | (enabled << 4) | Msi.FLAGS_ENABLE);
  }

  /** Removes every eventfd of an interrupt type (SET_IRQS with count 0) and closes its lines. */
  async disableInterrupts(kind: InterruptKind): Promise<void> {
    const index = irqIndex(kind);
    await this.request(Command.DEVICE_SET_IRQS, encodeU32s(IRQ_SET_SIZE, IrqSetFlag.ACTION_TRIGGER | IrqSetFlag.DATA_NONE, index, 0, 0));
    for (const [key, line] of [...this.lines]) {
      if (key.startsWith(`${index}:`)) {
        line.close();
        this.lines.delete(key);
      }
    }
  }

  /** Masks vectors (SET_IRQS ACTION_MASK | DATA_NONE). */
  async maskInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_MASK, kind, start, count);
  }

  /** Unmasks vectors (SET_IRQS ACTION_UNMASK | DATA_NONE); pending ones are delivered. */
  async unmaskInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_UNMASK, kind, start, count);
  }

  /** Fires vectors from the client side (SET_IRQS ACTION_TRIGGER | DATA_NONE). */
  async triggerInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_TRIGGER, kind, start, count);
  }

  /** SET_IRQS of `action` | DATA_NONE on vectors `start` to `start + count - 1`. */
  private async setIrqsAction(action: number, kind: InterruptKind, start: number, count: number): Promise<void> {
    await this.request(Command.DEVICE_SET_IRQS, encodeU32s(IRQ_SET_SIZE, action | IrqSetFlag.DATA_NONE, irqIndex(kind), start, count));
  }

  /** DEVICE_RESET. */
  async reset(): Promise<void> {
    await this.request(Command.DEVICE_RESET);
    this.knownState = undefined;
  }

  /**
   * DEVICE_FEATURE GET of MIGRATION: whether and how the device migrates.
   *
   * @throws {@link VfioUserError} (EINVAL from our server) when the device does not migrate
   */
  async getMigrationFeatures(): Promise<MigrationFeatures> {
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.MIGRATION, FeatureFlag.GET, new Uint8Array(0), FEATURE_HEADER_SIZE + 8),
    );
    const flags = decodeMigrationFlags(payload);
    return { flags, stopCopy: (flags & MigrationFlag.STOP_COPY) !== 0, preCopy: (flags & MigrationFlag.PRE_COPY) !== 0 };
  }

  /** DEVICE_FEATURE GET of MIG_DEVICE_STATE. */
  async getMigrationState(): Promise<MigrationState> {
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.GET, new Uint8Array(0), FEATURE_HEADER_SIZE + 8),
    );
    this.expectLength('MIG_DEVICE_STATE', payload, FEATURE_HEADER_SIZE + 8);
    this.knownState = stateOfWire(payload.readUInt32LE(FEATURE_HEADER_SIZE));
    return this.knownState;
  }

  /**
   * DEVICE_FEATURE SET of MIG_DEVICE_STATE: moves the device to `state`;
   * the server takes the shortest path of allowed arcs.
   *
   * @throws {@link MigrationTransitionError} when the server refuses (with its errno)
   */
  async setMigrationState(state: MigrationState): Promise<void> {
    const data = encodeDeviceState(wireState(state));
    try {
      await this.request(Command.DEVICE_FEATURE, encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.SET, data));
    } catch (err) {
      if (!(err instanceof VfioUserError) || err instanceof ProtocolError || err.syscall !== 'DEVICE_FEATURE') {
        throw err;
      }
      const from = await this.getMigrationState().catch(() => undefined);
      throw new MigrationTransitionError(err.errno, from, state);
    }
    this.knownState = state;
  }

  /** The migration state the client last set or read (undefined before any, or after a reset). */
  get migrationState(): MigrationState | undefined {
    return this.knownState;
  }

  /** Most bytes one migration data message may carry both ways. */
  get migrationChunkSize(): number {
    return Math.min(this.serverCapabilities.maxDataXferSize, this.maxDataXferSize);
  }

  /**
   * One MIG_DATA_READ of at most `size` bytes (default
   * {@link VfioUserClient.migrationChunkSize}); an empty Buffer means there is no more data now.
   */
  async readMigrationData(size = this.migrationChunkSize): Promise<Buffer> {
    checkRange('size', size, 0xfffffff7);
    const { payload } = await this.request(Command.MIG_DATA_READ, encodeDataRead(size));
    return decodeDataRead(payload, size);
  }

  /**
   * The migration data of the current saving state (PRE_COPY or
   * STOP_COPY), read with MIG_DATA_READ until the server gives no more.
   */
  async *migrationData(size = this.migrationChunkSize): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = await this.readMigrationData(size);
      if (chunk.length === 0) {
        return;
      }
      yield chunk;
    }
  }

  /** MIG_DATA_WRITE of `data`, in messages of at most {@link VfioUserClient.migrationChunkSize} bytes. */
  async writeMigrationData(data: Uint8Array): Promise<void> {
    const chunk = this.migrationChunkSize;
    for (let at = 0; at < data.length; at += chunk) {
      await this.request(Command.MIG_DATA_WRITE, encodeDataWrite(data.subarray(at, Math.min(data.length, at + chunk))));
    }
  }

  /**
   * DMA_LOGGING_START: the device logs its writes to client memory, in
   * `pageSize` pages (default 4096), over `ranges` (default: everything
   * mapped). Resolves with the page size the server chose.
   */
  async startDirtyLogging(options: { pageSize?: number; ranges?: readonly DirtyRange[] } = {}): Promise<number> {
    const pageSize = options.pageSize ?? 4096;
    const data = encodeLoggingStart(pageSize, options.ranges ?? []);
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.DMA_LOGGING_START, FeatureFlag.SET, data),
    );
    return payload.length >= FEATURE_HEADER_SIZE + 8 ? readU64(payload, FEATURE_HEADER_SIZE, 'DMA_LOGGING_START') : pageSize;
  }

  /** DMA_LOGGING_STOP. */
  async stopDirtyLogging(): Promise<void> {
    await this.request(Command.DEVICE_FEATURE, encodeFeature(DeviceFeature.DMA_LOGGING_STOP, FeatureFlag.SET));
  }

  /**
   * DMA_LOGGING_REPORT: the pages of `[iova, iova + length)` the device
   * wrote since logging started or since the last report (a report clears
   * them). Our server reports one whole mapping at a time.
   */
  async dirtyPages(iova: number, length: number, pageSize = 4096): Promise<DirtyReport> {
    const argsz = FEATURE_HEADER_SIZE + 24 + bitmapSize(length, pageSize);
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.DMA_LOGGING_REPORT, FeatureFlag.GET, encodeLoggingReport(iova, length, pageSize), argsz),
    );
    return decodeLoggingReport(payload, iova, length, pageSize);
  }

  /**
   * Disconnects, closes the interrupt lines and frees the guest memory. The
   * device keeps its state for the next client. Idempotent.
   */
  async close(): Promise<void> {
    this.channel.close();
    this.twin?.close();
    this.releaseResources();
  }

  /**
   * Serves DMA_READ / DMA_WRITE from the guest memory this client mapped, as
   * the specification asks: the range may span adjacent mappings but every
   * byte must be mapped (else EFAULT) with the access allowed (else EPERM),
   * and no message moves more than our max_data_xfer_size (else EINVAL).
   */
  private serveCommand(message: Message): Buffer {
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

  private onChannelClosed(reason: Error): void {
    this.twin?.close(reason);
    this.releaseResources();
    this.emit('close', reason);
  }

  private releaseResources(): void {
    for (const line of this.lines.values()) {
      line.close();
    }
    this.lines.clear();
    for (const memory of this.memories.splice(0)) {
      memory.close();
    }
  }

  private expectLength(what: string, payload: Buffer, min: number): void {
    if (payload.length < min) {
      throw new ProtocolError(what, `reply payload of ${payload.length} bytes, expected at least ${min}`);
    }
  }

  private parseRegionInfo(payload: Buffer, fds: number[]): RegionInfo {
    const flags = payload.readUInt32LE(4);
    const capOffset = payload.readUInt32LE(12);
    const sparseAreas: SparseMmapArea[] = [];
    if ((flags & RegionInfoFlag.CAPS) !== 0 && capOffset !== 0) {
      // Walk the capability chain; offsets are from the start of the info.
      const seen = new Set<number>();
      for (let at = capOffset; at !== 0 && !seen.has(at) && at + 8 <= payload.length; at = payload.readUInt32LE(at + 4)) {
        seen.add(at);
        if (payload.readUInt16LE(at) === REGION_INFO_CAP_SPARSE_MMAP && at + 16 <= payload.length) {
          const areas = payload.readUInt32LE(at + 8);
          for (let i = 0; i < areas && at + 16 + 16 * (i + 1) <= payload.length; i++) {
            sparseAreas.push({
              offset: readU64(payload, at + 16 + 16 * i, 'region info'),
              size: readU64(payload, at + 24 + 16 * i, 'region info'),
            });
          }
        }
      }
    }
    const [fd, ...extra] = fds;
    extra.forEach((other) => os.close(other));
    return {
      index: payload.readUInt32LE(8),
      flags,
      readable: (flags & RegionInfoFlag.READ) !== 0,
      writable: (flags & RegionInfoFlag.WRITE) !== 0,
      mappable: (flags & RegionInfoFlag.MMAP) !== 0,
      size: readU64(payload, 16, 'region info'),
      offset: readU64(payload, 24, 'region info'),
      sparseAreas,
      fd,
    };
  }
}
