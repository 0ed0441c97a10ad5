/**
 * A declarative register file: each register has an offset, a width, a reset
 * value and which of its bits are read-write, read-only or write-1-to-clear,
 * plus optional read and write hooks. Most devices need no hand-written
 * switch over offsets.
 *
 * @packageDocumentation
 */
import { DeviceDescriptionError, HandlerError } from './errors';
import { describeValue, refuseThenable } from './handler-results';
import type { RegionHandler } from './region';

/**
 * What a write hook is told about a write that reached its register.
 *
 * @typeParam V - number for registers of 1 to 4 bytes, bigint for 8 bytes
 */
export interface RegisterWrite<V extends number | bigint> {
  /** The bytes the client wrote, placed in the register (bytes not written are 0). */
  readonly value: V;
  /** Which bits the write covered: 0xff for every byte lane written. */
  readonly mask: V;
  /** The stored value before the write. */
  readonly previous: V;
  /** The stored value after the write's read-write and write-1-to-clear bits applied. */
  readonly current: V;
}

interface RegisterCommon {
  /** Byte offset of the register in the region. */
  readonly offset: number;
  /** Free text for people reading the map. */
  readonly description?: string;
}

/** A register of 1, 2 or 4 bytes; its values are numbers. */
export interface NarrowRegisterSpec extends RegisterCommon {
  /** Width in bytes. */
  readonly width: 1 | 2 | 4;
  /** Value after construction and after every device reset (default 0). */
  readonly reset?: number;
  /** Bits a client write sets and clears; `true` for all bits. */
  readonly rw?: number | true;
  /**
   * Bits a client write never changes; `true` for all. When given without
   * `rw`, every other bit (not write-1-to-clear) is read-write.
   */
  readonly ro?: number | true;
  /** Bits a client clears by writing 1 (writing 0 leaves them); `true` for all. */
  readonly w1c?: number | true;
  /**
   * Produces the value a read returns, given the stored value: an integer
   * that fits the width, or a negative one from a 32-bit operator (`~x`),
   * whose bits above the width are dropped. Anything else (a string,
   * undefined, a wider number, a Promise) fails the access with a
   * {@link HandlerError}.
   */
  readonly read?: (stored: number) => number;
  /** Called after a client write has been applied to the stored value; returning a Promise fails the write. */
  readonly write?: (access: RegisterWrite<number>) => void;
}

/** A register of 8 bytes; its values are bigints. */
export interface WideRegisterSpec extends RegisterCommon {
  /** Width in bytes. */
  readonly width: 8;
  /** Value after construction and after every device reset (default 0n). */
  readonly reset?: bigint;
  /** Bits a client write sets and clears; `true` for all bits. */
  readonly rw?: bigint | true;
  /** Bits a client write never changes; see {@link NarrowRegisterSpec.ro}. */
  readonly ro?: bigint | true;
  /** Bits a client clears by writing 1; `true` for all. */
  readonly w1c?: bigint | true;
  /** Produces the value a read returns, given the stored value: a bigint from -2^63 to 2^64-1, else the access fails. */
  readonly read?: (stored: bigint) => bigint;
  /** Called after a client write has been applied to the stored value; returning a Promise fails the write. */
  readonly write?: (access: RegisterWrite<bigint>) => void;
}

/** One register of a {@link RegisterMap}. */
export type RegisterSpec = NarrowRegisterSpec | WideRegisterSpec;

/** Where a register of a {@link RegisterMap} is. */
export interface RegisterExtent {
  /** Its name. */
  readonly name: string;
  /** Its offset in the region. */
  readonly offset: number;
  /** Its width in bytes. */
  readonly width: number;
}

/** The registers of a {@link RegisterMap}, by name. */
export type RegisterSpecs = { readonly [name: string]: RegisterSpec };

/** The type of a register's value: bigint for 8-byte registers, number otherwise. */
export type RegisterValue<R extends RegisterSpec> = R extends WideRegisterSpec ? bigint : number;

/** Reads up to this many bytes are cleared with a loop rather than fill(). */
const SMALL_ACCESS = 16;

interface CompiledRegister {
  readonly name: string;
  readonly offset: number;
  readonly end: number;
  readonly width: number;
  readonly resetBytes: Uint8Array;
  readonly rwBytes: Uint8Array;
  readonly w1cBytes: Uint8Array;
  readonly read?: (stored: never) => number | bigint;
  readonly write?: (access: RegisterWrite<never>) => void;
  /** The hooks' names in error messages, made once rather than per access. */
  readonly readHook: string;
  readonly writeHook: string;
}

function toBytes(value: number | bigint, width: number, into: Uint8Array = new Uint8Array(width)): Uint8Array {
  if (typeof value === 'bigint') {
    let v = BigInt.asUintN(64, value);
    for (let i = 0; i < width; i++) {
      into[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  } else {
    // Hooks may compute with 32-bit signed operators: ~x, x << 31.
    let v = value < 0 ? value >>> 0 : Math.trunc(value);
    for (let i = 0; i < width; i++) {
      into[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  return into;
}

function fromBytes(bytes: Uint8Array, start: number, width: number): number | bigint {
  if (width === 8) {
    let v = 0n;
    for (let i = 7; i >= 0; i--) {
      v = (v << 8n) | BigInt(bytes[start + i]);
    }
    return v;
  }
  let v = 0;
  for (let i = width - 1; i >= 0; i--) {
    v = v * 256 + bytes[start + i];
  }
  return v;
}

/** Checks a mask or value for a register and turns it into bytes. */
function maskBytes(
  field: string,
  value: number | bigint | true | undefined,
  width: number,
): Uint8Array | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (value === true) {
    return new Uint8Array(width).fill(0xff);
  }
  if (width === 8) {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) {
      throw new DeviceDescriptionError(field, 'an 8-byte register takes bigint values from 0n to 2^64-1');
    }
  } else if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= 2 ** (8 * width)) {
    throw new DeviceDescriptionError(field, `a ${width}-byte register takes integers from 0 to 2^${8 * width}-1`);
  }
  return toBytes(value, width);
}

/**
 * Checks a read hook's value: a number for a register of up to 4 bytes (an
 * integer that fits the width, or the negative result of a 32-bit operator
 * such as ~x, whose bits above the width are dropped), a bigint for an
 * 8-byte one (likewise from -2^63). Anything else fails the access.
 */
function checkHookValue(r: CompiledRegister, value: unknown): number | bigint {
  const hook = r.readHook;
  if (r.width === 8) {
    if (typeof value === 'bigint' && value >= -(1n << 63n) && value < 1n << 64n) {
      return value;
    }
    refuseThenable(value, hook);
    throw new HandlerError(hook, `returned ${describeValue(value)}: an 8-byte register's hook returns a bigint from -2^63 to 2^64-1`);
  }
  if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** (8 * r.width)) {
    return value;
  }
  refuseThenable(value, hook);
  throw new HandlerError(
    hook,
    `returned ${describeValue(value)}: a ${r.width}-byte register's hook returns an integer from -2^31 to 2^${8 * r.width}-1`,
  );
}

function overlaps(a: Uint8Array, b: Uint8Array): boolean {
  return a.some((byte, i) => (byte & b[i]) !== 0);
}

function compile(name: string, spec: RegisterSpec): CompiledRegister {
  const field = `registers.${name}`;
  if (spec === null || typeof spec !== 'object') {
    throw new DeviceDescriptionError(field, 'must be an object');
  }
  const { offset, width } = spec;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new DeviceDescriptionError(`${field}.offset`, `must be a non-negative integer, not ${String(offset)}`);
  }
  if (width !== 1 && width !== 2 && width !== 4 && width !== 8) {
    throw new DeviceDescriptionError(`${field}.width`, `must be 1, 2, 4 or 8, not ${String(width)}`);
  }
  const resetBytes = maskBytes(`${field}.reset`, spec.reset, width) ?? new Uint8Array(width);
  const w1c = maskBytes(`${field}.w1c`, spec.w1c, width) ?? new Uint8Array(width);
  const ro = maskBytes(`${field}.ro`, spec.ro, width);
  let rw = maskBytes(`${field}.rw`, spec.rw, width);
  if (rw === undefined) {
    // Naming only the read-only bits makes the rest read-write.
    rw = ro === undefined ? new Uint8Array(width) : ro.map((b, i) => ~(b | w1c[i]) & 0xff);
  }
  if (overlaps(rw, w1c)) {
    throw new DeviceDescriptionError(field, 'a bit cannot be both read-write and write-1-to-clear');
  }
  if (ro !== undefined && (overlaps(ro, rw) || overlaps(ro, w1c))) {
    throw new DeviceDescriptionError(field, 'a read-only bit cannot also be writable');
  }
  if (spec.read !== undefined && typeof spec.read !== 'function') {
    throw new DeviceDescriptionError(`${field}.read`, 'must be a function');
  }
  if (spec.write !== undefined && typeof spec.write !== 'function') {
    throw new DeviceDescriptionError(`${field}.write`, 'must be a function');
  }
  return {
    name,
    offset,
    end: offset + width,
    width,
    resetBytes,
    rwBytes: rw,
    w1cBytes: w1c,
    read: spec.read,
    write: spec.write,
    readHook: `${field} read hook`,
    writeHook: `${field} write hook`,
  };
}

/**
 * A register file that serves a region: give it to a BAR as its handler.
 *
 * Client accesses of any size at any offset are split over the registers they
 * touch; bytes that belong to no register read as zero and ignore writes. A
 * client write changes only the read-write bits of the bytes it covers, clears
 * the write-1-to-clear bits it writes as 1, and never changes other bits. The
 * device itself changes any bit with {@link RegisterMap.set} and friends.
 *
 * @example
 * ```ts
 * regs = new RegisterMap({
 *   ctrl:   { offset: 0x0, width: 4, rw: 0x1 },
 *   count:  { offset: 0x4, width: 4, read: () => this.ticks },
 *   status: { offset: 0x8, width: 4, w1c: 0x1 },
 * });
 * ```
 *
 * @typeParam S - the register descriptions, so that names and value types are checked
 */
export class RegisterMap<const S extends RegisterSpecs = RegisterSpecs> implements RegionHandler {
  /** Bytes from offset 0 to the end of the last register. */
  readonly size: number;
  // #private so that a subclass's members of the same names neither clash
  // with these nor replace them.
  readonly #registers: readonly CompiledRegister[];
  readonly #byName: ReadonlyMap<string, CompiledRegister>;
  readonly #file: Uint8Array;
  readonly #scratch = new Uint8Array(8);

  /**
   * @param specs - the registers by name
   * @throws {@link DeviceDescriptionError} for a malformed register or two registers that overlap
   */
  constructor(specs: S) {
    if (specs === null || typeof specs !== 'object') {
      throw new DeviceDescriptionError('registers', 'must be an object of register descriptions');
    }
    const compiled = Object.entries(specs).map(([name, spec]) => compile(name, spec));
    compiled.sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < compiled.length; i++) {
      if (compiled[i].offset < compiled[i - 1].end) {
        throw new DeviceDescriptionError(
          `registers.${compiled[i].name}`,
          `overlaps register ${compiled[i - 1].name} (0x${compiled[i - 1].offset.toString(16)}, ${compiled[i - 1].width} bytes)`,
        );
      }
    }
    this.#registers = compiled;
    this.#byName = new Map(compiled.map((r) => [r.name, r]));
    this.size = compiled.length === 0 ? 0 : compiled[compiled.length - 1].end;
    this.#file = new Uint8Array(this.size);
    // Not this.reset(): a subclass's override would run before its own fields exist.
    this.#restore();
  }

  /** Where each register is, in offset order. */
  get layout(): readonly RegisterExtent[] {
    return this.#registers.map(({ name, offset, width }) => ({ name, offset, width }));
  }

  /** The names of the registers, in offset order. */
  get names(): string[] {
    return this.#registers.map((r) => r.name);
  }

  /** The offset of a register. */
  offsetOf(name: keyof S & string): number {
    return this.#lookup(name).offset;
  }

  /** The stored value of a register (read hooks are not called). */
  get<K extends keyof S & string>(name: K): RegisterValue<S[K]> {
    const r = this.#lookup(name);
    return fromBytes(this.#file, r.offset, r.width) as RegisterValue<S[K]>;
  }

  /** Stores a value, every bit of it, whatever the register's access bits. */
  set<K extends keyof S & string>(name: K, value: RegisterValue<S[K]>): void {
    const r = this.#lookup(name);
    const bytes = maskBytes(`registers.${name}`, value, r.width);
    if (bytes !== undefined) {
      this.#file.set(bytes, r.offset);
    }
  }

  /** Sets the bits of `mask` in a register. */
  setBits<K extends keyof S & string>(name: K, mask: RegisterValue<S[K]>): void {
    this.#update(name, mask, true);
  }

  /** Clears the bits of `mask` in a register. */
  clearBits<K extends keyof S & string>(name: K, mask: RegisterValue<S[K]>): void {
    this.#update(name, mask, false);
  }

  /** Restores every register to its reset value. */
  reset(): void {
    this.#restore();
  }

  /** The stored values of every register, for migration (hooks are not called). */
  saveState(): Uint8Array {
    return this.#file.slice();
  }

  /** Puts back values saved by {@link RegisterMap.saveState} on a map of the same layout. */
  loadState(state: Buffer): void {
    if (state.length !== this.#file.length) {
      throw new RangeError(`saved registers of ${state.length} bytes do not fit this map of ${this.#file.length}`);
    }
    this.#file.set(state);
  }

  #restore(): void {
    for (const r of this.#registers) {
      this.#file.set(r.resetBytes, r.offset);
    }
  }

  /** Serves a client read: see the class description. */
  read(offset: number, data: Buffer): void {
    const end = offset + data.length;
    // Accesses are a few bytes: plain loops, which the JIT inlines, cost far
    // less than fill(), set() and subarray() (calls into builtins, and a new
    // view allocated per access).
    if (data.length <= SMALL_ACCESS) {
      for (let k = 0; k < data.length; k++) {
        data[k] = 0;
      }
    } else {
      data.fill(0);
    }
    for (let i = this.#firstEndingAfter(offset); i < this.#registers.length; i++) {
      const r = this.#registers[i];
      if (r.offset >= end) {
        break;
      }
      const from = Math.max(offset, r.offset);
      const to = Math.min(end, r.end);
      let source = this.#file;
      let base = 0;
      if (r.read !== undefined) {
        const stored = fromBytes(this.#file, r.offset, r.width);
        const value: unknown = (r.read as (v: number | bigint) => unknown)(stored);
        source = toBytes(checkHookValue(r, value), r.width, this.#scratch);
        base = r.offset;
      }
      for (let pos = from; pos < to; pos++) {
        data[pos - offset] = source[pos - base];
      }
    }
  }

  /** Serves a client write: see the class description. */
  write(offset: number, data: Buffer): void {
    const end = offset + data.length;
    for (let i = this.#firstEndingAfter(offset); i < this.#registers.length; i++) {
      const r = this.#registers[i];
      if (r.offset >= end) {
        break;
      }
      const from = Math.max(offset, r.offset);
      const to = Math.min(end, r.end);
      const previous = r.write === undefined ? undefined : fromBytes(this.#file, r.offset, r.width);
      for (let pos = from; pos < to; pos++) {
        const k = pos - r.offset;
        const written = data[pos - offset];
        const kept = this.#file[pos] & ~r.rwBytes[k];
        this.#file[pos] = (kept | (written & r.rwBytes[k])) & ~(written & r.w1cBytes[k]);
      }
      if (r.write !== undefined && previous !== undefined) {
        // The written bytes and their mask, in register position, built in
        // the scratch bytes: a hooked write allocates no arrays.
        const scratch = this.#scratch;
        scratch.fill(0);
        for (let pos = from; pos < to; pos++) {
          scratch[pos - r.offset] = data[pos - offset];
        }
        const value = fromBytes(scratch, 0, r.width);
        scratch.fill(0);
        scratch.fill(0xff, from - r.offset, to - r.offset);
        const mask = fromBytes(scratch, 0, r.width);
        const returned: unknown = (r.write as (a: RegisterWrite<number | bigint>) => unknown)({
          value,
          mask,
          previous,
          current: fromBytes(this.#file, r.offset, r.width),
        });
        refuseThenable(returned, r.writeHook);
      }
    }
  }

  #update(name: string, mask: number | bigint, set: boolean): void {
    const r = this.#lookup(name);
    const bytes = maskBytes(`registers.${name}`, mask, r.width);
    if (bytes === undefined) {
      return;
    }
    for (let k = 0; k < r.width; k++) {
      this.#file[r.offset + k] = set ? this.#file[r.offset + k] | bytes[k] : this.#file[r.offset + k] & ~bytes[k];
    }
  }

  #lookup(name: string): CompiledRegister {
    const r = this.#byName.get(name);
    if (r === undefined) {
      throw new RangeError(`no register named ${JSON.stringify(name)}`);
    }
    return r;
  }

  /** Index of the first register (by offset) that ends after `offset`. */
  #firstEndingAfter(offset: number): number {
    let lo = 0;
    let hi = this.#registers.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#registers[mid].end <= offset) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
}
