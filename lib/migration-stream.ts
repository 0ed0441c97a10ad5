/**
 * The migration stream a {@link VfioUserServer} produces on the source and
 * consumes on the destination, through MIG_DATA_READ and MIG_DATA_WRITE.
 *
 * ```
 * stream   = preamble record*
 * preamble = "VFUMIGR\0" (8 bytes), u32 format version, u32 0
 * record   = u32 type, u32 length, payload[length]
 * ```
 *
 * Records come in this order: IDENTITY (JSON: what the device is and its
 * state version), PRE_COPY* (the device's pre-copy data), LIBRARY (what the
 * library keeps: BAR handler state, the MSI-X table and PBA, interrupts
 * held while stopped), DEVICE* (the device's state), END. Integers are
 * little-endian.
 *
 * @packageDocumentation
 */
import { MigrationStreamError } from './errors';

/** The 8 bytes every stream starts with. */
export const STREAM_MAGIC = Buffer.from('VFUMIGR\0', 'latin1');
/** Version of the format described above; a stream of another version is refused. */
export const STREAM_FORMAT_VERSION = 1;
/** Bytes of the preamble. */
export const PREAMBLE_SIZE = 16;
/** Bytes of a record's header. */
export const RECORD_HEADER_SIZE = 8;
/** Largest IDENTITY record taken: far more than any identity needs. */
export const MAX_IDENTITY_SIZE = 64 * 1024;

/** Record types. */
export const RecordType = {
  IDENTITY: 1,
  PRE_COPY: 2,
  LIBRARY: 3,
  DEVICE: 4,
  END: 5,
} as const;

/** What must match between the source's device and the destination's. */
export interface StreamIdentity {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  readonly classCode: readonly number[];
  readonly revision: number;
  readonly configSize: number;
  readonly bars: ReadonlyArray<{ readonly index: number; readonly size: number; readonly flags: number }>;
  readonly irqs: { readonly intx: number; readonly msi: number; readonly msix: number };
  /** The device's own state format version. */
  readonly stateVersion: number;
}

/** The preamble of a stream. */
export function encodePreamble(): Buffer {
  const b = Buffer.alloc(PREAMBLE_SIZE);
  STREAM_MAGIC.copy(b, 0);
  b.writeUInt32LE(STREAM_FORMAT_VERSION, 8);
  return b;
}

/** A record's header. */
export function encodeRecordHeader(type: number, length: number): Buffer {
  const b = Buffer.alloc(RECORD_HEADER_SIZE);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(length, 4);
  return b;
}

/** A whole record. */
export function encodeRecord(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer[] {
  return payload.length === 0 ? [encodeRecordHeader(type, 0)] : [encodeRecordHeader(type, payload.length), Buffer.from(payload.buffer, payload.byteOffset, payload.length)];
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Checks that a stream's identity is this device's; the error names the
 * first thing that differs.
 */
export function checkIdentity(theirs: StreamIdentity, ours: StreamIdentity): void {
  const scalar: Array<[keyof StreamIdentity, string, (n: number) => string]> = [
    ['vendorId', 'vendor ID', hex],
    ['deviceId', 'device ID', hex],
    ['subsystemVendorId', 'subsystem vendor ID', hex],
    ['subsystemId', 'subsystem ID', hex],
    ['revision', 'revision', hex],
    ['configSize', 'config space size', String],
    ['stateVersion', 'device state version', String],
  ];
  for (const [key, what, show] of scalar) {
    if (theirs[key] !== ours[key]) {
      throw new MigrationStreamError(
        `the stream is from an incompatible device: its ${what} is ${show(theirs[key] as number)}, this device's is ${show(ours[key] as number)}`,
      );
    }
  }
  const pairs: Array<[string, unknown, unknown]> = [
    ['class code', theirs.classCode, ours.classCode],
    ['BARs', theirs.bars, ours.bars],
    ['interrupt vectors', theirs.irqs, ours.irqs],
  ];
  for (const [what, a, b] of pairs) {
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw new MigrationStreamError(
        `the stream is from an incompatible device: its ${what} are ${JSON.stringify(a)}, this device's are ${JSON.stringify(b)}`,
      );
    }
  }
}

/** Parses an IDENTITY record's JSON. */
export function decodeIdentity(payload: Buffer): StreamIdentity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new MigrationStreamError('the identity record is not JSON');
  }
  const id = parsed as Partial<StreamIdentity> | null;
  const numbers = ['vendorId', 'deviceId', 'subsystemVendorId', 'subsystemId', 'revision', 'configSize', 'stateVersion'] as const;
  if (
    id === null ||
    typeof id !== 'object' ||
    numbers.some((k) => typeof id[k] !== 'number') ||
    !Array.isArray(id.classCode) ||
    !Array.isArray(id.bars) ||
    typeof id.irqs !== 'object' ||
    id.irqs === null
  ) {
    throw new MigrationStreamError('the identity record lacks fields');
  }
  return id as StreamIdentity;
}

/** Appends little-endian fields to a growing list of chunks. */
export class FieldWriter {
  private readonly chunks: Buffer[] = [];

  /** A u32. */
  u32(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    this.chunks.push(b);
    return this;
  }

  /** A u32 length, then the bytes. */
  bytes(data: Uint8Array): this {
    this.u32(data.length);
    this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.length));
    return this;
  }

  /** Everything written, in one Buffer. */
  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Reads what a {@link FieldWriter} wrote, refusing to run past the end. */
export class FieldReader {
  private at = 0;

  /**
   * @param data - the bytes
   * @param what - what they are, for errors
   */
  constructor(
    private readonly data: Buffer,
    private readonly what: string,
  ) {}

  /** A u32. */
  u32(): number {
    this.need(4);
    const value = this.data.readUInt32LE(this.at);
    this.at += 4;
    return value;
  }

  /** A u32 length and that many bytes (a view). */
  bytes(): Buffer {
    const length = this.u32();
    this.need(length);
    const view = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return view;
  }

  /** Throws unless everything was read. */
  end(): void {
    if (this.at !== this.data.length) {
      throw new MigrationStreamError(`the ${this.what} has ${this.data.length - this.at} bytes too many`);
    }
  }

  private need(n: number): void {
    if (this.at + n > this.data.length) {
      throw new MigrationStreamError(`the ${this.what} is cut short`);
    }
  }
}

/** What a {@link StreamParser} hands on as it parses. */
export interface StreamSink {
  /** The identity record: throw to refuse the stream. */
  identity(identity: StreamIdentity): void;
  /** A piece of a PRE_COPY or DEVICE record (a view, valid during the call); `end` on its record's last piece. */
  data(type: typeof RecordType.PRE_COPY | typeof RecordType.DEVICE, piece: Buffer, end: boolean): void;
  /** The LIBRARY record, whole. */
  library(payload: Buffer): void;
  /** The END record: the stream is complete. */
  end(): void;
}

/**
 * Parses a stream written in pieces of any size. After the first error
 * every later write fails with it too.
 */
export class StreamParser {
  private preamble = Buffer.alloc(0);
  private header = Buffer.alloc(0);
  private type = 0;
  private left = 0;
  private inRecord = false;
  private wholeParts: Buffer[] = [];
  private lastType = 0;
  private failed: Error | undefined;
  private ended = false;

  /**
   * @param sink - receives the records
   * @param maxLibrarySize - largest LIBRARY record taken (records that are
   *   kept whole are bounded, so a bad stream cannot exhaust memory)
   */
  constructor(
    private readonly sink: StreamSink,
    private readonly maxLibrarySize: number,
  ) {}

  /** Every record up to END has arrived and been taken. */
  get complete(): boolean {
    return this.ended;
  }

  /** Takes the next bytes of the stream. */
  write(bytes: Buffer): void {
    if (this.failed !== undefined) {
      throw this.failed;
    }
    try {
      this.consume(bytes);
    } catch (err) {
      this.failed = err as Error;
      throw err;
    }
  }

  private consume(bytes: Buffer): void {
    let at = 0;
    if (this.preamble.length < PREAMBLE_SIZE) {
      const take = Math.min(PREAMBLE_SIZE - this.preamble.length, bytes.length);
      this.preamble = Buffer.concat([this.preamble, bytes.subarray(0, take)]);
      at = take;
      const magic = Math.min(this.preamble.length, STREAM_MAGIC.length);
      if (!this.preamble.subarray(0, magic).equals(STREAM_MAGIC.subarray(0, magic))) {
        throw new MigrationStreamError('not a migration stream of this library (bad magic)');
      }
      if (this.preamble.length === PREAMBLE_SIZE) {
        const version = this.preamble.readUInt32LE(8);
        if (version !== STREAM_FORMAT_VERSION) {
          throw new MigrationStreamError(`stream format version ${version}; this library reads version ${STREAM_FORMAT_VERSION}`);
        }
      }
    }
    while (at < bytes.length) {
      if (this.lastType === RecordType.END) {
        throw new MigrationStreamError('data after the end of the stream');
      }
      if (!this.inRecord) {
        const take = Math.min(RECORD_HEADER_SIZE - this.header.length, bytes.length - at);
        this.header = Buffer.concat([this.header, bytes.subarray(at, at + take)]);
        at += take;
        if (this.header.length < RECORD_HEADER_SIZE) {
          return;
        }
        this.startRecord(this.header.readUInt32LE(0), this.header.readUInt32LE(4));
        this.header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(this.left, bytes.length - at);
      const piece = bytes.subarray(at, at + take);
      at += take;
      this.left -= take;
      this.recordBytes(piece);
    }
  }

  private startRecord(type: number, length: number): void {
    const order: Record<number, readonly number[]> = {
      [RecordType.IDENTITY]: [0],
      [RecordType.PRE_COPY]: [RecordType.IDENTITY, RecordType.PRE_COPY],
      [RecordType.LIBRARY]: [RecordType.IDENTITY, RecordType.PRE_COPY],
      [RecordType.DEVICE]: [RecordType.LIBRARY, RecordType.DEVICE],
      [RecordType.END]: [RecordType.LIBRARY, RecordType.DEVICE],
    };
    const allowedAfter = order[type];
    if (allowedAfter === undefined) {
      throw new MigrationStreamError(`unknown record type ${type}`);
    }
    if (!allowedAfter.includes(this.lastType)) {
      throw new MigrationStreamError(`record type ${type} out of order (after type ${this.lastType})`);
    }
    if (type === RecordType.END && length !== 0) {
      throw new MigrationStreamError('the end record has a payload');
    }
    if (type === RecordType.IDENTITY && length > MAX_IDENTITY_SIZE) {
      throw new MigrationStreamError(`an identity record of ${length} bytes`);
    }
    if (type === RecordType.LIBRARY && length > this.maxLibrarySize) {
      throw new MigrationStreamError(`a library state record of ${length} bytes, more than this device's can be (${this.maxLibrarySize})`);
    }
    this.type = type;
    this.left = length;
    this.lastType = type;
    this.inRecord = true;
    if (length === 0) {
      this.recordBytes(Buffer.alloc(0));
    }
  }

  private recordBytes(piece: Buffer): void {
    const done = this.left === 0;
    if (this.type === RecordType.PRE_COPY || this.type === RecordType.DEVICE) {
      this.sink.data(this.type, piece, done);
    } else if (piece.length > 0) {
      // Kept past this write: copied.
      this.wholeParts.push(Buffer.from(piece));
    }
    if (!done) {
      return;
    }
    this.inRecord = false;
    const whole = Buffer.concat(this.wholeParts);
    this.wholeParts = [];
    if (this.type === RecordType.IDENTITY) {
      this.sink.identity(decodeIdentity(whole));
    } else if (this.type === RecordType.LIBRARY) {
      this.sink.library(whole);
    } else if (this.type === RecordType.END) {
      this.sink.end();
      this.ended = true;
    }
  }
}
