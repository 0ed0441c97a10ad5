/**
 * The migration messages of the vfio-user protocol (migration v2): the
 * DEVICE_FEATURE payloads for MIGRATION, MIG_DEVICE_STATE and
 * DMA_LOGGING_START / STOP / REPORT, and MIG_DATA_READ / MIG_DATA_WRITE.
 *
 * @packageDocumentation
 */
import type { MigrationState } from '../migration';
import { ProtocolError } from '../errors';
import { readU64 } from './protocol';

/** DEVICE_FEATURE feature indexes (`<linux/vfio.h>`). */
export const DeviceFeature = {
  /** Which migration states the device supports (GET). */
  MIGRATION: 1,
  /** The migration state (GET, SET). */
  MIG_DEVICE_STATE: 2,
  /** Start dirty-page logging (SET). */
  DMA_LOGGING_START: 6,
  /** Stop dirty-page logging (SET). */
  DMA_LOGGING_STOP: 7,
  /** The dirty bitmap of a range (GET). */
  DMA_LOGGING_REPORT: 8,
} as const;

/** DEVICE_FEATURE flags besides the feature index. */
export const FeatureFlag = {
  /** Get the feature's data. */
  GET: 1 << 16,
  /** Set it. */
  SET: 1 << 17,
  /** Only ask whether the feature (and the operations also set) is supported. */
  PROBE: 1 << 18,
} as const;

/** Flags of the MIGRATION feature's data. */
export const MigrationFlag = {
  /** STOP_COPY is supported (always, for a migratable device). */
  STOP_COPY: 1,
  /** The P2P states are supported (never over vfio-user). */
  P2P: 2,
  /** PRE_COPY is supported. */
  PRE_COPY: 4,
} as const;

/** `vfio_device_mig_state` values on the wire. */
export const DeviceState = {
  /** Failed; only a reset leaves it. */
  ERROR: 0,
  /** Stopped. */
  STOP: 1,
  /** Running. */
  RUNNING: 2,
  /** Stopped, its state being read out. */
  STOP_COPY: 3,
  /** Stopped, a state being written in. */
  RESUMING: 4,
  /** Not used in vfio-user. */
  RUNNING_P2P: 5,
  /** Running, its state being read out ahead of the stop. */
  PRE_COPY: 6,
  /** Not used in vfio-user. */
  PRE_COPY_P2P: 7,
} as const;

const WIRE_OF_STATE: Readonly<Record<MigrationState, number>> = {
  error: DeviceState.ERROR,
  stop: DeviceState.STOP,
  running: DeviceState.RUNNING,
  'stop-copy': DeviceState.STOP_COPY,
  resuming: DeviceState.RESUMING,
  'pre-copy': DeviceState.PRE_COPY,
};

/** The wire value of a migration state. */
export function wireState(state: MigrationState): number {
  const value = WIRE_OF_STATE[state];
  if (value === undefined) {
    throw new RangeError(`not a migration state: ${String(state)}`);
  }
  return value;
}

/** The migration state of a wire value. */
export function stateOfWire(value: number): MigrationState {
  const entry = Object.entries(WIRE_OF_STATE).find(([, v]) => v === value);
  if (entry === undefined) {
    throw new ProtocolError('MIG_DEVICE_STATE', `device state ${value} is not one vfio-user uses`);
  }
  return entry[0] as MigrationState;
}

/**
 * The direct transitions (arcs) a server must support, from the protocol
 * specification. Other pairs are reached through several arcs by the
 * server, or refused (STOP_COPY to PRE_COPY, and anything to ERROR).
 */
export const MIGRATION_ARCS: Readonly<Record<MigrationState, readonly MigrationState[]>> = {
  running: ['stop', 'pre-copy'],
  stop: ['running', 'stop-copy', 'resuming'],
  'stop-copy': ['stop'],
  resuming: ['stop'],
  'pre-copy': ['running', 'stop-copy'],
  error: [],
};

/** Bytes of the DEVICE_FEATURE header: argsz, flags. */
export const FEATURE_HEADER_SIZE = 8;

/** A DEVICE_FEATURE request: `argsz` is the room for the reply. */
export function encodeFeature(feature: number, flags: number, data: Uint8Array = new Uint8Array(0), argsz = FEATURE_HEADER_SIZE + data.length): Buffer {
  const b = Buffer.alloc(FEATURE_HEADER_SIZE + data.length);
  b.writeUInt32LE(argsz >>> 0, 0);
  b.writeUInt32LE((feature | flags) >>> 0, 4);
  b.set(data, FEATURE_HEADER_SIZE);
  return b;
}

/** The data of MIG_DEVICE_STATE: state, and data_fd (unused in vfio-user). */
export function encodeDeviceState(state: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(state, 0);
  b.writeUInt32LE(0, 4);
  return b;
}

/** One IOVA range for dirty-page logging. */
export interface DirtyRange {
  /** Start address. */
  readonly iova: number;
  /** Length in bytes. */
  readonly length: number;
}

/** The data of DMA_LOGGING_START: page size, ranges (none: log everything). */
export function encodeLoggingStart(pageSize: number, ranges: readonly DirtyRange[]): Buffer {
  const b = Buffer.alloc(16 + 16 * ranges.length);
  b.writeBigUInt64LE(BigInt(pageSize), 0);
  b.writeUInt32LE(ranges.length, 8);
  ranges.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt(r.iova), 16 + 16 * i);
    b.writeBigUInt64LE(BigInt(r.length), 24 + 16 * i);
  });
  return b;
}

/** Bytes of the bitmap of `length` bytes at `pageSize`: whole u64s. */
export function bitmapSize(length: number, pageSize: number): number {
  return Math.ceil(Math.ceil(length / pageSize) / 64) * 8;
}

/** The data of DMA_LOGGING_REPORT: iova, length, page size. */
export function encodeLoggingReport(iova: number, length: number, pageSize: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(iova), 0);
  b.writeBigUInt64LE(BigInt(length), 8);
  b.writeBigUInt64LE(BigInt(pageSize), 16);
  return b;
}

/** The dirty pages of a range, from a DMA_LOGGING_REPORT reply. */
export interface DirtyReport {
  /** Start of the range. */
  readonly iova: number;
  /** Its length. */
  readonly length: number;
  /** Bytes per bit. */
  readonly pageSize: number;
  /** The bitmap as sent: bit n of u64 n/64 for page n. */
  readonly bitmap: Buffer;
  /** The address of every dirty page, in order. */
  readonly pages: readonly number[];
}

/** Decodes a DMA_LOGGING_REPORT reply payload (feature header, request data, bitmap). */
export function decodeLoggingReport(payload: Buffer, iova: number, length: number, pageSize: number): DirtyReport {
  const size = bitmapSize(length, pageSize);
  const start = FEATURE_HEADER_SIZE + 24;
  if (payload.length < start + size) {
    throw new ProtocolError('DMA_LOGGING_REPORT', `reply of ${payload.length} bytes has no ${size}-byte bitmap`);
  }
  const bitmap = payload.subarray(start, start + size);
  const pages: number[] = [];
  const count = Math.ceil(length / pageSize);
  for (let page = 0; page < count; page++) {
    if ((bitmap[page >> 3] >> (page & 7)) & 1) {
      pages.push(iova + page * pageSize);
    }
  }
  return { iova, length, pageSize, bitmap, pages };
}

/** A MIG_DATA_READ request for `size` bytes. */
export function encodeDataRead(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(8 + size, 0);
  b.writeUInt32LE(size, 4);
  return b;
}

/** The data of a MIG_DATA_READ reply. */
export function decodeDataRead(payload: Buffer, asked: number): Buffer {
  if (payload.length < 8) {
    throw new ProtocolError('MIG_DATA_READ', `reply of ${payload.length} bytes is shorter than 8`);
  }
  const size = payload.readUInt32LE(4);
  if (size > asked || payload.length < 8 + size) {
    throw new ProtocolError('MIG_DATA_READ', `reply says ${size} bytes (asked ${asked}, ${payload.length - 8} sent)`);
  }
  return payload.subarray(8, 8 + size);
}

/** A MIG_DATA_WRITE request. */
export function encodeDataWrite(data: Uint8Array): Buffer {
  const b = Buffer.alloc(8 + data.length);
  b.writeUInt32LE(8 + data.length, 0);
  b.writeUInt32LE(data.length, 4);
  b.set(data, 8);
  return b;
}

/** Reads the u64 flags of a MIGRATION GET reply. */
export function decodeMigrationFlags(payload: Buffer): number {
  if (payload.length < FEATURE_HEADER_SIZE + 8) {
    throw new ProtocolError('DEVICE_FEATURE', `MIGRATION reply of ${payload.length} bytes is shorter than 16`);
  }
  return readU64(payload, FEATURE_HEADER_SIZE, 'MIGRATION flags');
}
