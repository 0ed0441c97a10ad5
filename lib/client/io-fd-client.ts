/**
 * The ioeventfd layer of {@link VfioUserClient}: DEVICE_GET_REGION_IO_FDS,
 * and writes that kick the device's eventfd instead of sending a message,
 * as a client that wires them to KVM does.
 *
 * @packageDocumentation
 */
import { IoeventfdFlag } from '../doorbell-plan';
import { errorFromCode, ProtocolError } from '../errors';
import { os } from '../native';
import { checkAccess, checkRange } from './arguments';
import { InterruptClient } from './interrupt-client';
import { Command, encodeU32s, readU64 } from './protocol';

/** The mechanism of a GET_REGION_IO_FDS entry (`VFIO_USER_IO_FD_TYPE_*`). */
export type IoFdType = 'ioeventfd' | 'ioregionfd' | 'ioeventfd-shadow';

/** One entry of a GET_REGION_IO_FDS reply. */
export interface RegionIoFd {
  /** Offset of the sub-region in the region. */
  readonly offset: number;
  /** Its size; 0: writes of any size. */
  readonly size: number;
  /** Which fd of the reply it uses (entries may share one). */
  readonly fdIndex: number;
  /** How the fd is used. */
  readonly type: IoFdType;
  /** `KVM_IOEVENTFD_FLAG_*` (see `IoeventfdFlag`), or the ioregionfd's flags. */
  readonly flags: number;
  /** The value a write must have, when `flags` has DATAMATCH. */
  readonly datamatch?: bigint;
}

/** A GET_REGION_IO_FDS reply. */
export interface RegionIoFds {
  /** The region asked about. */
  readonly region: number;
  /** The sub-regions, in the server's order. */
  readonly entries: readonly RegionIoFd[];
  /** The fds the entries name by `fdIndex`; the caller owns them and must close them. */
  readonly fds: readonly number[];
}

const IO_FDS_HEAD = 16;
/** The spec's entry: offset, size, fd_index, type, flags, padding, datamatch. */
const SPEC_ENTRY = 40;
/** libvfio-user's entry: shadow_mem_fd_index and shadow_offset take the padding's place, datamatch follows. */
const LIBRARY_ENTRY = 48;
const IO_FD_TYPES: readonly IoFdType[] = ['ioeventfd', 'ioregionfd', 'ioeventfd-shadow'];

/**
 * A device's ioeventfd as the client has wired it: writes that match it
 * kick it instead of going out as REGION_WRITE.
 */
export class IoEventfd {
  #fd: number | undefined;

  /** @internal */
  constructor(
    /** The region it is in. */
    readonly region: number,
    /** Its entry in the server's reply. */
    readonly entry: RegionIoFd,
    fd: number,
  ) {
    this.#fd = fd;
  }

  /** Whether a write of `data` at `offset` of its region kicks it (KVM's rule). */
  matches(offset: number, data: Uint8Array): boolean {
    const { entry } = this;
    if (offset !== entry.offset || (entry.size !== 0 && data.length !== entry.size)) {
      return false;
    }
    if ((entry.flags & IoeventfdFlag.DATAMATCH) === 0) {
      return true;
    }
    if (data.length > 8) {
      return false;
    }
    let value = 0n;
    for (let i = data.length - 1; i >= 0; i--) {
      value = (value << 8n) | BigInt(data[i]);
    }
    return value === entry.datamatch;
  }

  /**
   * Kicks it `times` times at once, as that many writes would: the device
   * sees them as one count if it has not run in between.
   *
   * @throws {@link VfioUserError} EBADF once the client has let it go
   */
  kick(times = 1): void {
    checkRange('kick', 'times', times, Number.MAX_SAFE_INTEGER);
    if (this.#fd === undefined) {
      throw errorFromCode('EBADF', 'kick', 'the ioeventfd was released (client closed, or disableIoEventfds)');
    }
    os.eventfdWrite(this.#fd, times);
  }

  /**
   * Forgets the fd, which the client closes: kicks fail from now on.
   * @internal
   */
  release(): void {
    this.#fd = undefined;
  }
}

/** DEVICE_GET_REGION_IO_FDS and ioeventfd-routed writes of a {@link VfioUserClient}. */
export abstract class IoFdClient extends InterruptClient {
  private readonly wired = new Map<number, { readonly eventfds: IoEventfd[]; readonly fds: readonly number[] }>();

  /**
   * DEVICE_GET_REGION_IO_FDS: the sub-regions of `region` the server
   * offers fds for, asking again with room for them all when needed.
   *
   * @throws {@link ProtocolError} for a reply whose entries or fds do not add up
   */
  async getRegionIoFds(region: number): Promise<RegionIoFds> {
    checkRange('DEVICE_GET_REGION_IO_FDS', 'region', region, 0xffffffff);
    let argsz = IO_FDS_HEAD;
    for (;;) {
      const { payload, fds } = await this.request(Command.DEVICE_GET_REGION_IO_FDS, encodeU32s(argsz, 0, region, 0));
      try {
        this.expectLength('DEVICE_GET_REGION_IO_FDS', payload, IO_FDS_HEAD);
        const needed = payload.readUInt32LE(0);
        const count = payload.readUInt32LE(12);
        if (count > 0 && payload.length < needed && needed > argsz) {
          fds.forEach((fd) => os.close(fd));
          argsz = needed;
          continue;
        }
        return { region: payload.readUInt32LE(8), entries: parseIoFdEntries(payload, count, fds.length), fds };
      } catch (err) {
        fds.forEach((fd) => os.close(fd));
        throw err;
      }
    }
  }

  /**
   * Wires the ioeventfds the server offers for `region`, replacing any
   * wired before: from now on a write that matches one (at its offset, of
   * its size, of its datamatch value when it has one) kicks it with no
   * message, as KVM would; other writes go out as REGION_WRITE. Resolves
   * with them (none when the server offers none).
   */
  async enableIoEventfds(region: number): Promise<IoEventfd[]> {
    const { entries, fds } = await this.getRegionIoFds(region);
    const eventfds = entries.flatMap((entry) => (entry.type === 'ioeventfd' ? [new IoEventfd(region, entry, fds[entry.fdIndex])] : []));
    this.disableIoEventfds(region);
    this.wired.set(region, { eventfds, fds });
    return eventfds;
  }

  /** Lets go of `region`'s ioeventfds: its writes go out as REGION_WRITE again. */
  disableIoEventfds(region: number): void {
    const wiring = this.wired.get(region);
    if (wiring !== undefined) {
      this.wired.delete(region);
      release(wiring);
    }
  }

  /**
   * REGION_WRITE of `data` at `offset`, or, when it matches an ioeventfd
   * wired with {@link IoFdClient.enableIoEventfds}, a kick of it and no message.
   */
  override async writeRegion(region: number, offset: number, data: Uint8Array): Promise<void> {
    const target = this.wired.get(region)?.eventfds.find((eventfd) => eventfd.matches(offset, data));
    if (target === undefined) {
      return super.writeRegion(region, offset, data);
    }
    checkAccess('REGION_WRITE', region, offset, data.length);
    target.kick();
    return Promise.resolve();
  }

  /** Closes the ioeventfds, then what the layers below hold; the connection has ended. */
  protected override releaseResources(): void {
    for (const wiring of this.wired.values()) {
      release(wiring);
    }
    this.wired.clear();
    super.releaseResources();
  }
}

function release(wiring: { readonly eventfds: IoEventfd[]; readonly fds: readonly number[] }): void {
  wiring.eventfds.forEach((eventfd) => eventfd.release());
  wiring.fds.forEach((fd) => os.close(fd));
}

/**
 * @internal The entries of a reply. The spec lays an entry out in 40 bytes with
 * datamatch at 32; libvfio-user (ours and upstream's) sends 48, with its
 * shadow fields before datamatch at 40. The stride tells which.
 */
export function parseIoFdEntries(payload: Buffer, count: number, fdCount: number): RegionIoFd[] {
  if (count === 0) {
    return [];
  }
  const stride = (payload.readUInt32LE(0) - IO_FDS_HEAD) / count;
  if (stride !== SPEC_ENTRY && stride !== LIBRARY_ENTRY) {
    throw new ProtocolError('DEVICE_GET_REGION_IO_FDS', `argsz ${payload.readUInt32LE(0)} for ${count} entries is neither 40 nor 48 bytes each`);
  }
  if (payload.length < IO_FDS_HEAD + stride * count) {
    throw new ProtocolError('DEVICE_GET_REGION_IO_FDS', `${count} entries of ${stride} bytes do not fit a payload of ${payload.length}`);
  }
  const entries: RegionIoFd[] = [];
  for (let i = 0; i < count; i++) {
    const at = IO_FDS_HEAD + stride * i;
    const fdIndex = payload.readUInt32LE(at + 16);
    const typeCode = payload.readUInt32LE(at + 20);
    const flags = payload.readUInt32LE(at + 24);
    const type = IO_FD_TYPES[typeCode];
    if (type === undefined) {
      throw new ProtocolError('DEVICE_GET_REGION_IO_FDS', `entry ${i} has unknown type ${typeCode}`);
    }
    if (fdIndex >= fdCount) {
      throw new ProtocolError('DEVICE_GET_REGION_IO_FDS', `entry ${i} names fd ${fdIndex}; the reply has ${fdCount}`);
    }
    const datamatch = payload.readBigUInt64LE(at + (stride === LIBRARY_ENTRY ? 40 : 32));
    entries.push({
      offset: readU64(payload, at, 'DEVICE_GET_REGION_IO_FDS'),
      size: readU64(payload, at + 8, 'DEVICE_GET_REGION_IO_FDS'),
      fdIndex,
      type,
      flags,
      ...(type === 'ioeventfd' && (flags & IoeventfdFlag.DATAMATCH) !== 0 ? { datamatch } : {}),
    });
  }
  return entries;
}
