/**
 * Live migration of a device: what a device declares (its state, saved and
 * loaded as bytes), the migration states, and the per-server machinery that
 * answers the library's transition, read_data and write_data callbacks.
 *
 * @packageDocumentation
 */
import { MigrationStreamError } from './errors';
import {
  checkIdentity,
  encodePreamble,
  encodeRecord,
  encodeRecordHeader,
  RecordType,
  StreamParser,
  type StreamIdentity,
} from './migration-stream';

/**
 * A device's migration state (the protocol's `vfio_device_mig_state`):
 * `'running'`; `'stop'`, stopped; `'stop-copy'`, stopped while its state is
 * read out; `'resuming'`, stopped while a state is written in; `'pre-copy'`,
 * running while the first part of its state is read out; `'error'`.
 */
export type MigrationState = 'running' | 'stop' | 'stop-copy' | 'resuming' | 'pre-copy' | 'error';

/**
 * What a device saves: nothing, bytes, or any iterable of byte chunks (a
 * generator, say), which is read lazily as the client asks for data, so a
 * large state need not be in memory at once.
 */
export type MigrationData = Uint8Array | Iterable<Uint8Array> | undefined | void;

/**
 * How a device migrates its own state: everything that is not in the
 * library's keeping. The library itself carries the state of BAR handlers
 * that have `saveState` / `loadState` ({@link RegisterMap},
 * {@link MemoryRegion}), the MSI-X table and PBA, and interrupts raised
 * while the device was stopped; the client restores config space.
 *
 * Exactly one of `load` and `loadChunk` is given; `preCopy` and
 * `loadPreCopy` go together.
 */
export interface DeviceMigration {
  /**
   * Version of the device's state format (default 1). A destination whose
   * device has another version refuses the stream.
   */
  readonly version?: number;
  /**
   * Source, on entering `'stop-copy'` (the device is stopped): the device's
   * state. Chunks are copied as the client reads them.
   */
  save(): MigrationData;
  /**
   * Destination: the state `save()` produced, assembled. Called when the
   * whole stream has arrived, while `'resuming'`, before the library's
   * state (register maps, MSI-X) is put back.
   */
  load?(state: Buffer): void;
  /**
   * Destination, instead of `load`: the state in pieces as they arrive (a
   * view valid only during the call: copy what you keep), then one last call
   * with an empty chunk and `end` true.
   */
  loadChunk?(chunk: Buffer, end: boolean): void;
  /**
   * Source, on entering `'pre-copy'` (the device keeps running): data sent
   * ahead of the stop, to shorten it. What changes after it is for `save()`.
   */
  preCopy?(): MigrationData;
  /** Destination: the pre-copy data, assembled, before the state itself. */
  loadPreCopy?(data: Buffer): void;
}

/** The library's `vfu_migr_state_t` values, as the transition callback passes them. */
export const LibraryMigrationState = {
  STOP: 0,
  RUNNING: 1,
  STOP_AND_COPY: 2,
  PRE_COPY: 3,
  RESUME: 4,
} as const;

const STATE_OF_LIBRARY: Readonly<Record<number, MigrationState>> = {
  [LibraryMigrationState.STOP]: 'stop',
  [LibraryMigrationState.RUNNING]: 'running',
  [LibraryMigrationState.STOP_AND_COPY]: 'stop-copy',
  [LibraryMigrationState.PRE_COPY]: 'pre-copy',
  [LibraryMigrationState.RESUME]: 'resuming',
};

/** The migration state of a library `vfu_migr_state_t` value. */
export function migrationStateOf(value: number): MigrationState | undefined {
  return STATE_OF_LIBRARY[value];
}

/** Whether a device in this state runs (raises interrupts, does DMA). */
export function isRunningState(state: MigrationState): boolean {
  return state === 'running' || state === 'pre-copy';
}

function isSaving(state: MigrationState): boolean {
  return state === 'pre-copy' || state === 'stop-copy';
}

/**
 * The state the library keeps for a device, which the stream carries
 * besides the device's own.
 * @internal
 */
export interface LibraryState {
  /** Snapshot, taken when the device stops for the copy. */
  save(): Buffer;
  /** The largest snapshot this device's can be. */
  maxSize(): number;
  /** Checks a snapshot and returns what puts it in place; throws {@link MigrationStreamError}. */
  prepare(snapshot: Buffer): () => void;
}

/** What a {@link MigrationRunner} acts on. @internal */
export interface MigrationTarget {
  /** The device's migration declaration. */
  readonly migration: DeviceMigration;
  /** What must match between source and destination. */
  readonly identity: StreamIdentity;
  /** The library's share of the state. */
  readonly library: LibraryState;
  /** The device stops; it is marked stopped after this returns, so it may still finish DMA. */
  stop(): void;
  /** The device, already marked running, resumes; then held interrupts are delivered. */
  resume(): void;
  /** Records the new state (for the device's guards and the server's event). */
  changed(state: MigrationState, previous: MigrationState): void;
}

function* dataRecords(type: number, data: MigrationData, what: string): Generator<Uint8Array> {
  if (data === undefined) {
    return;
  }
  const chunks: Iterable<unknown> = data instanceof Uint8Array ? [data] : data;
  if (chunks === null || typeof (chunks as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function') {
    throw new TypeError(`${what} returned neither bytes nor an iterable of Uint8Array`);
  }
  for (const chunk of chunks) {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`${what} gave a ${typeof chunk}, not a Uint8Array`);
    }
    // A record's length is a u32.
    for (let at = 0; at < chunk.length; at += 0xffffffff) {
      const piece = chunk.subarray(at, Math.min(chunk.length, at + 0xffffffff));
      yield encodeRecordHeader(type, piece.length);
      yield piece;
    }
  }
}

function* chain(first: Iterator<Uint8Array> | undefined, second: Iterator<Uint8Array>): Generator<Uint8Array> {
  if (first !== undefined) {
    for (let next = first.next(); next.done !== true; next = first.next()) {
      yield next.value;
    }
  }
  for (let next = second.next(); next.done !== true; next = second.next()) {
    yield next.value;
  }
}

/**
 * Runs the migration protocol for one served device: tracks the state
 * through the library's transitions, writes the stream on the source and
 * reads it on the destination.
 * @internal
 */
export class MigrationRunner {
  private current: MigrationState = 'running';
  // Source: the pieces of the stream still to be read in this phase.
  private pieces: Iterator<Uint8Array> | undefined;
  private piece: Uint8Array | undefined;
  private pieceOffset = 0;
  private identitySent = false;
  // Destination.
  private parser: StreamParser | undefined;
  private received = 0;

  /** @param target - the device and what it keeps */
  constructor(private readonly target: MigrationTarget) {}

  /** The state now. */
  get state(): MigrationState {
    return this.current;
  }

  /** The library's transition callback: one step (an allowed arc). */
  transition(value: number): void {
    const to = migrationStateOf(value);
    if (to === undefined) {
      throw new MigrationStreamError(`unknown migration state ${value}`);
    }
    const from = this.current;
    if (to === from) {
      return;
    }
    if (from === 'resuming') {
      // RESUMING -> STOP completes the load; any other way out (the client
      // left, or reset the device) abandons it.
      if (to === 'stop') {
        this.finishResuming();
      }
      this.parser = undefined;
    }
    const stopping = isRunningState(from) && !isRunningState(to);
    if (stopping) {
      this.target.stop();
    }
    try {
      if (to === 'pre-copy') {
        this.startSaving();
        this.pieces = this.preCopyPieces();
      } else if (to === 'stop-copy') {
        if (from === 'pre-copy') {
          // Pre-copy data the client has not read yet still comes first.
          this.pieces = chain(this.pieces, this.stopCopyPieces());
        } else {
          this.startSaving();
          this.pieces = this.stopCopyPieces();
        }
      } else if (isSaving(from)) {
        this.endSaving();
      }
      if (to === 'resuming') {
        this.startResuming();
      }
    } catch (err) {
      if (stopping) {
        this.target.resume();
      }
      throw err;
    }
    this.current = to;
    this.target.changed(to, from);
    if (!isRunningState(from) && isRunningState(to)) {
      try {
        this.target.resume();
      } catch (err) {
        this.current = from;
        this.target.changed(from, to);
        throw err;
      }
    }
  }

  /** The library's read_data callback: fills `into` as far as the phase's data goes; 0 at its end. */
  read(into: Buffer): number {
    let filled = 0;
    while (filled < into.length && this.pieces !== undefined) {
      if (this.piece === undefined || this.pieceOffset === this.piece.length) {
        const next = this.pieces.next();
        if (next.done === true) {
          this.pieces = undefined;
          this.piece = undefined;
          break;
        }
        this.piece = next.value;
        this.pieceOffset = 0;
        continue;
      }
      const take = Math.min(into.length - filled, this.piece.length - this.pieceOffset);
      into.set(this.piece.subarray(this.pieceOffset, this.pieceOffset + take), filled);
      filled += take;
      this.pieceOffset += take;
    }
    return filled;
  }

  /** The library's write_data callback: takes the next bytes of the stream (a view valid during the call). */
  write(data: Buffer): void {
    if (this.parser === undefined) {
      throw new MigrationStreamError('migration data written outside the resuming state');
    }
    this.parser.write(data);
    this.received += data.length;
  }

  private startSaving(): void {
    this.identitySent = false;
    this.piece = undefined;
    this.pieceOffset = 0;
  }

  private endSaving(): void {
    this.pieces = undefined;
    this.piece = undefined;
  }

  private *head(): Generator<Uint8Array> {
    if (!this.identitySent) {
      this.identitySent = true;
      yield encodePreamble();
      yield* encodeRecord(RecordType.IDENTITY, Buffer.from(JSON.stringify(this.target.identity)));
    }
  }

  private *preCopyPieces(): Generator<Uint8Array> {
    yield* this.head();
    const { migration } = this.target;
    if (migration.preCopy !== undefined) {
      yield* dataRecords(RecordType.PRE_COPY, migration.preCopy(), 'migration.preCopy()');
    }
  }

  private stopCopyPieces(): Iterator<Uint8Array> {
    // Taken now, while the device is stopped, not when the client reads.
    const library = this.target.library.save();
    const state = this.target.migration.save();
    const rest = function* (this: MigrationRunner): Generator<Uint8Array> {
      yield* this.head();
      yield* encodeRecord(RecordType.LIBRARY, library);
      yield* dataRecords(RecordType.DEVICE, state, 'migration.save()');
      yield* encodeRecord(RecordType.END);
    };
    return rest.call(this);
  }

  private startResuming(): void {
    const { migration, identity, library } = this.target;
    const preCopy: Buffer[] = [];
    const state: Buffer[] = [];
    let apply: (() => void) | undefined;
    this.received = 0;
    this.parser = new StreamParser({
      identity: (theirs) => checkIdentity(theirs, identity),
      data: (type, piece, end) => {
        void end;
        if (type === RecordType.PRE_COPY) {
          if (migration.loadPreCopy === undefined) {
            throw new MigrationStreamError('the stream has pre-copy data and this device takes none');
          }
          preCopy.push(Buffer.from(piece));
        } else if (migration.loadChunk !== undefined) {
          if (piece.length > 0) {
            migration.loadChunk(piece, false);
          }
        } else {
          state.push(Buffer.from(piece));
        }
      },
      library: (snapshot) => {
        apply = library.prepare(snapshot);
        if (preCopy.length > 0) {
          migration.loadPreCopy?.(Buffer.concat(preCopy));
        }
      },
      end: () => {
        if (migration.loadChunk !== undefined) {
          migration.loadChunk(Buffer.alloc(0), true);
        } else if (migration.load !== undefined) {
          migration.load(Buffer.concat(state));
        }
        apply?.();
      },
    }, library.maxSize());
  }

  private finishResuming(): void {
    if (this.parser?.complete !== true) {
      throw new MigrationStreamError(`the stream ended before its end record (${this.received} bytes received)`);
    }
  }
}
