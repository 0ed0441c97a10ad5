/**
 * The vfio-user wire format, from the protocol specification: the message
 * header, command numbers, and the request and reply payloads the client
 * builds and parses. All fields are little-endian (host order on x86-64).
 *
 * @packageDocumentation
 */
import { ProtocolError } from '../errors';

/** vfio-user command numbers. */
export const Command = {
  /** Version and capability negotiation. */
  VERSION: 1,
  /** Make client memory available for DMA. */
  DMA_MAP: 2,
  /** Withdraw a DMA mapping. */
  DMA_UNMAP: 3,
  /** Device flags and counts of regions and IRQ types. */
  DEVICE_GET_INFO: 4,
  /** One region's size, flags and capabilities. */
  DEVICE_GET_REGION_INFO: 5,
  /** ioeventfds of a region. */
  DEVICE_GET_REGION_IO_FDS: 6,
  /** One IRQ type's vector count and flags. */
  DEVICE_GET_IRQ_INFO: 7,
  /** Install eventfds, mask, unmask or trigger interrupts. */
  DEVICE_SET_IRQS: 8,
  /** Read a region. */
  REGION_READ: 9,
  /** Write a region. */
  REGION_WRITE: 10,
  /** Server to client: read client memory. */
  DMA_READ: 11,
  /** Server to client: write client memory. */
  DMA_WRITE: 12,
  /** Reset the device. */
  DEVICE_RESET: 13,
  /** Several small region writes in one message. */
  REGION_WRITE_MULTI: 15,
  /** Migration and dirty-page-logging features. */
  DEVICE_FEATURE: 16,
  /** Read migration data. */
  MIG_DATA_READ: 17,
  /** Write migration data. */
  MIG_DATA_WRITE: 18,
} as const;

/** Bits of the header's flags word. */
export const HeaderFlag = {
  /** Message type field: 0 command, 1 reply. */
  TYPE_MASK: 0xf,
  /** A command. */
  TYPE_COMMAND: 0x0,
  /** A reply. */
  TYPE_REPLY: 0x1,
  /** The sender wants no reply. */
  NO_REPLY: 0x10,
  /** The reply reports an error; the error field holds an errno. */
  ERROR: 0x20,
} as const;

/** Size of the message header. */
export const HEADER_SIZE = 16;

/** DMA_MAP flags. */
export const DmaFlag = {
  /** The server may read the range. */
  READ: 0x1,
  /** The server may write the range. */
  WRITE: 0x2,
  /** Access by mmap() of the fd passed. */
  MMAP: 0x4,
  /** Access by pread()/pwrite() on the fd passed. */
  FILE_IO: 0x8,
} as const;

/** SET_IRQS flags (`<linux/vfio.h>`). */
export const IrqSetFlag = {
  /** No data: act on the whole range. */
  DATA_NONE: 0x1,
  /** One byte per vector says whether to act on it. */
  DATA_BOOL: 0x2,
  /** Eventfds, passed as ancillary data. */
  DATA_EVENTFD: 0x4,
  /** Mask. */
  ACTION_MASK: 0x8,
  /** Unmask. */
  ACTION_UNMASK: 0x10,
  /** Trigger (or, with eventfds: signal them when the server triggers). */
  ACTION_TRIGGER: 0x20,
} as const;

/** Region info flags (`<linux/vfio.h>`). */
export const RegionInfoFlag = {
  /** The region can be read. */
  READ: 0x1,
  /** The region can be written. */
  WRITE: 0x2,
  /** The region can be mapped with the fd that comes with the reply. */
  MMAP: 0x4,
  /** The reply has a capability chain. */
  CAPS: 0x8,
} as const;

/** Device info flags (`<linux/vfio.h>`). */
export const DeviceInfoFlag = {
  /** The device supports DEVICE_RESET. */
  RESET: 0x1,
  /** A PCI device. */
  PCI: 0x2,
} as const;

/** Region info capability ID of the sparse mmap areas. */
export const REGION_INFO_CAP_SPARSE_MMAP = 1;

/** A decoded message header. */
export interface MessageHeader {
  /** Message ID, echoed in the reply. */
  readonly id: number;
  /** Command number. */
  readonly command: number;
  /** Size of the whole message, header included. */
  readonly size: number;
  /** Flags word. */
  readonly flags: number;
  /** errno of an error reply. */
  readonly error: number;
}

/** A whole message as received. */
export interface Message {
  /** Its header. */
  readonly header: MessageHeader;
  /** The bytes after the header. */
  readonly payload: Buffer;
  /** File descriptors that came with it (the receiver owns them). */
  readonly fds: number[];
}

/** Encodes a header. */
export function encodeHeader(id: number, command: number, payloadSize: number, flags: number, error = 0): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt16LE(id, 0);
  header.writeUInt16LE(command, 2);
  header.writeUInt32LE(HEADER_SIZE + payloadSize, 4);
  header.writeUInt32LE(flags >>> 0, 8);
  header.writeUInt32LE(error >>> 0, 12);
  return header;
}

/** Decodes the header at the start of `bytes`. */
export function decodeHeader(bytes: Uint8Array): MessageHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return {
    id: b.readUInt16LE(0),
    command: b.readUInt16LE(2),
    size: b.readUInt32LE(4),
    flags: b.readUInt32LE(8),
    error: b.readUInt32LE(12),
  };
}

/** The name of a command number, for messages. */
export function commandName(command: number): string {
  const entry = Object.entries(Command).find(([, value]) => value === command);
  return entry === undefined ? `command ${command}` : entry[0];
}

/** What the server says it supports in its VERSION reply. */
export interface ServerCapabilities {
  /** Most file descriptors the server takes in one message. */
  readonly maxMsgFds: number;
  /** Most bytes one read or write message may carry. */
  readonly maxDataXferSize: number;
  /** Most DMA mappings at once. */
  readonly maxDmaMaps: number;
  /** Page sizes supported for DMA, ORed together. */
  readonly pgsizes: number;
  /** REGION_WRITE_MULTI is supported. */
  readonly writeMultiple: boolean;
  /** Migration page size, when the server supports migration. */
  readonly migrationPgsize?: number;
  /** Which fd of the reply is the twin socket, when the server granted one. */
  readonly twinSocketFdIndex?: number;
  /** The whole JSON object the server sent, for anything else. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** The spec's defaults for capabilities a peer leaves out. */
export const DEFAULT_CAPABILITIES = {
  maxMsgFds: 1,
  maxDataXferSize: 1 << 20,
  maxDmaMaps: 65535,
  pgsizes: 4096,
} as const;

/** Builds a VERSION payload: major, minor, NUL-terminated JSON. */
export function encodeVersion(major: number, minor: number, capabilities: Record<string, unknown>): Buffer {
  const json = Buffer.from(`${JSON.stringify({ capabilities })}\0`);
  const fixed = Buffer.alloc(4);
  fixed.writeUInt16LE(major, 0);
  fixed.writeUInt16LE(minor, 2);
  return Buffer.concat([fixed, json]);
}

function numberField(caps: Record<string, unknown>, name: string, fallback: number): number {
  const value = caps[name];
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ProtocolError('VERSION', `capability ${name} is not a non-negative integer: ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses a VERSION reply payload. */
export function decodeVersion(payload: Buffer): { major: number; minor: number; capabilities: ServerCapabilities } {
  if (payload.length < 4) {
    throw new ProtocolError('VERSION', `reply of ${payload.length} bytes is shorter than 4`);
  }
  const major = payload.readUInt16LE(0);
  const minor = payload.readUInt16LE(2);
  let caps: Record<string, unknown> = {};
  if (payload.length > 4) {
    const end = payload.indexOf(0, 4);
    if (end < 0) {
      throw new ProtocolError('VERSION', 'the JSON in the reply is not NUL-terminated');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8', 4, end));
    } catch (err) {
      throw new ProtocolError('VERSION', `the reply's JSON does not parse: ${(err as Error).message}`);
    }
    const inner = (parsed as { capabilities?: unknown } | null)?.capabilities;
    if (parsed === null || typeof parsed !== 'object' || (inner !== undefined && (inner === null || typeof inner !== 'object'))) {
      throw new ProtocolError('VERSION', 'the reply\'s JSON is not {"capabilities": {...}}');
    }
    caps = (inner ?? {}) as Record<string, unknown>;
  }
  const migration = caps.migration as { pgsize?: unknown } | undefined;
  const twin = caps.twin_socket as { supported?: unknown; fd_index?: unknown } | undefined;
  return {
    major,
    minor,
    capabilities: {
      maxMsgFds: numberField(caps, 'max_msg_fds', DEFAULT_CAPABILITIES.maxMsgFds),
      maxDataXferSize: numberField(caps, 'max_data_xfer_size', DEFAULT_CAPABILITIES.maxDataXferSize),
      maxDmaMaps: numberField(caps, 'max_dma_maps', DEFAULT_CAPABILITIES.maxDmaMaps),
      pgsizes: numberField(caps, 'pgsizes', DEFAULT_CAPABILITIES.pgsizes),
      writeMultiple: caps.write_multiple === true,
      migrationPgsize: typeof migration?.pgsize === 'number' ? migration.pgsize : undefined,
      twinSocketFdIndex: twin?.supported === true && typeof twin.fd_index === 'number' ? twin.fd_index : undefined,
      raw: caps,
    },
  };
}

/** Reads a u64 that must fit a JS number. */
export function readU64(b: Buffer, offset: number, what: string): number {
  const value = b.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError(what, `0x${value.toString(16)} does not fit in a number`);
  }
  return Number(value);
}

/** A REGION_READ / REGION_WRITE access header: offset, region, count. */
export function encodeRegionAccess(region: number, offset: number, count: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(offset), 0);
  b.writeUInt32LE(region >>> 0, 8);
  b.writeUInt32LE(count >>> 0, 12);
  return b;
}

/** The fixed part of an `argsz, flags, index, count`-style request. */
export function encodeU32s(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  return b;
}
