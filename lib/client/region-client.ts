/**
 * The first layer of {@link VfioUserClient}: the connection's basic
 * requests, device, region and IRQ information, and region and config
 * space access.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';

import { PciConfig, PciStatus, Region, type EventInterruptKind, type InterruptKind } from '../constants';
import { ArgumentError, ProtocolError, RegionAccessError, TimeoutError, VfioUserError } from '../errors';
import { os } from '../native';
import { checkAccess, checkRange, irqIndex } from './arguments';
import type { Channel, RequestOptions } from './channel';
import type { VfioUserClientEvents } from './client';
import { RegionMapping } from './region-mapping';
import {
  Command,
  DeviceInfoFlag,
  encodeRegionAccess,
  encodeU32s,
  readU64,
  REGION_INFO_CAP_SPARSE_MMAP,
  RegionInfoFlag,
  type Message,
  type ServerCapabilities,
} from './protocol';

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

/** A raw reply: its header and payload, and any fds (the caller owns them). */
export type VfioUserReply = Message;

/** One write of {@link RegionClient.writeRegionMulti}: at most 8 bytes. */
export interface MultiWrite {
  /** Region index. */
  readonly region: number;
  /** Offset in the region. */
  readonly offset: number;
  /** 1 to 8 bytes. */
  readonly data: Uint8Array;
}

const REGION_INFO_SIZE = 32;
const MULTI_WRITE_ENTRY = 24;

/**
 * Region, config space and device information requests of a
 * {@link VfioUserClient}; the other layers build on it.
 */
export abstract class RegionClient extends EventEmitter<VfioUserClientEvents> {
  /** Negotiated version. */
  readonly version: { readonly major: number; readonly minor: number };
  /** What the server said it supports. */
  readonly serverCapabilities: ServerCapabilities;
  /** Most bytes of data one DMA_READ / DMA_WRITE from the server may move (what we told it). */
  readonly maxDataXferSize: number;
  /** The connection; the client owns it. */
  protected readonly channel: Channel;

  protected constructor(channel: Channel, version: { major: number; minor: number }, capabilities: ServerCapabilities, maxDataXferSize: number) {
    super();
    this.channel = channel;
    this.version = version;
    this.serverCapabilities = capabilities;
    this.maxDataXferSize = maxDataXferSize;
  }

  /** True until the connection ends. */
  get connected(): boolean {
    return this.channel.open;
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
    checkRange('DEVICE_GET_REGION_INFO', 'region', index, 0xffffffff);
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

  /**
   * Maps region `index` into this process through the fd of its region
   * info, each sparse-mmap area (or the whole region) as QEMU does:
   * accesses through the mapping send no message.
   *
   * @throws {@link ArgumentError} when the server offers no mapping of the region
   */
  async mapRegion(index: number): Promise<RegionMapping> {
    return new RegionMapping(await this.getRegionInfo(index));
  }

  /** DEVICE_GET_IRQ_INFO for an interrupt kind, or a raw VFIO IRQ index (0 INTx ... 4 REQ). */
  async getIrqInfo(kind: InterruptKind | EventInterruptKind | number): Promise<IrqInfo> {
    const index = irqIndex(kind);
    const { payload } = await this.request(Command.DEVICE_GET_IRQ_INFO, encodeU32s(16, 0, index, 0));
    this.expectLength('DEVICE_GET_IRQ_INFO', payload, 16);
    return { flags: payload.readUInt32LE(4), index: payload.readUInt32LE(8), count: payload.readUInt32LE(12) };
  }

  /**
   * REGION_READ of `count` bytes at `offset`, in one message.
   *
   * @throws {@link ArgumentError} for a region, offset or count out of range, before sending
   * @throws {@link RegionAccessError} when the server refuses, saying why when the client can tell
   */
  async readRegion(region: number, offset: number, count: number): Promise<Buffer> {
    checkAccess('REGION_READ', region, offset, count);
    const { payload } = await this.regionRequest(Command.REGION_READ, 'REGION_READ', region, offset, count, encodeRegionAccess(region, offset, count));
    this.expectLength('REGION_READ', payload, 16);
    const got = payload.readUInt32LE(12);
    if (got !== count || payload.length !== 16 + count) {
      throw new ProtocolError('REGION_READ', `asked for ${count} bytes, the reply has ${got} (${payload.length - 16} sent)`);
    }
    return payload.subarray(16);
  }

  /**
   * REGION_WRITE of `data` at `offset`, in one message.
   *
   * @throws {@link ArgumentError} for a region or offset out of range, before sending
   * @throws {@link RegionAccessError} when the server refuses, saying why when the client can tell
   */
  async writeRegion(region: number, offset: number, data: Uint8Array): Promise<void> {
    checkAccess('REGION_WRITE', region, offset, data.length);
    const body = Buffer.concat([encodeRegionAccess(region, offset, data.length), data]);
    const { payload } = await this.regionRequest(Command.REGION_WRITE, 'REGION_WRITE', region, offset, data.length, body);
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
        throw new ArgumentError(`writes[${i}].data`, `has ${w.data.length} bytes; each write takes 1 to 8`, 'REGION_WRITE_MULTI');
      }
      checkAccess('REGION_WRITE_MULTI', w.region, w.offset, w.data.length);
      const at = 8 + MULTI_WRITE_ENTRY * i;
      encodeRegionAccess(w.region, w.offset, w.data.length).copy(body, at);
      body.set(w.data, at + 16);
    });
    const { payload } = await this.request(Command.REGION_WRITE_MULTI, body);
    this.expectLength('REGION_WRITE_MULTI', payload, 8);
    return readU64(payload, 0, 'REGION_WRITE_MULTI');
  }

  /** Reads a BAR: {@link RegionClient.readRegion} on region `bar`. */
  async readBar(bar: number, offset: number, count: number): Promise<Buffer> {
    checkRange('REGION_READ', 'bar', bar, 5);
    return this.readRegion(bar, offset, count);
  }

  /** Writes a BAR: {@link RegionClient.writeRegion} on region `bar`. */
  async writeBar(bar: number, offset: number, data: Uint8Array): Promise<void> {
    checkRange('REGION_WRITE', 'bar', bar, 5);
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
   * Offset of the first standard capability with ID `id` (see
   * {@link index!CapabilityId}) in config space, walking the list as a driver
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
  /**
   * Sends a region access; an error reply becomes a {@link RegionAccessError}
   * that says why when region info can tell (past the end, no such region).
   */
  private async regionRequest(command: number, name: string, region: number, offset: number, count: number, body: Buffer): Promise<Message> {
    try {
      return await this.request(command, body);
    } catch (err) {
      if (!(err instanceof VfioUserError) || err.syscall !== name || err instanceof TimeoutError || err instanceof ProtocolError || err.code === 'ENOTCONN') {
        throw err;
      }
      throw new RegionAccessError(err.errno, name, region, offset, count, await this.explainRefusal(region, offset, count));
    }
  }

  /** What region info says about a refused access, if anything. */
  private async explainRefusal(region: number, offset: number, count: number): Promise<string | undefined> {
    let size: number;
    try {
      const info = await this.getRegionInfo(region);
      if (info.fd !== undefined) {
        os.close(info.fd);
      }
      size = info.size;
    } catch {
      return undefined;
    }
    if (size === 0) {
      return 'the device has no such region';
    }
    if (offset + count > size) {
      return `past the end of the region, size 0x${size.toString(16)}`;
    }
    return undefined;
  }

  protected expectLength(what: string, payload: Buffer, min: number): void {
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
