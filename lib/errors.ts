/**
 * Typed errors thrown and emitted by the device API, the server and the client.
 *
 * @packageDocumentation
 */
import { constants as osConstants } from 'node:os';

const errnoByName: Readonly<Record<string, number>> = osConstants.errno;
const nameByErrno = new Map<number, string>(
  Object.entries(errnoByName).map(([name, value]) => [value, name]),
);

/**
 * The symbolic name of an errno value, such as `'EINVAL'` for 22, or
 * `'E<number>'` when the number has no name on this system.
 */
export function errnoName(errno: number): string {
  return nameByErrno.get(errno) ?? `E${errno}`;
}

/** The errno value of a symbolic name such as `'EINVAL'`, or undefined. */
export function errnoValue(name: string): number | undefined {
  return errnoByName[name];
}

/**
 * An operation failed with an operating-system or protocol error number: a
 * system call of the addon, or an error reply from a vfio-user peer.
 */
export class VfioUserError extends Error {
  /** The positive errno value, e.g. 22. */
  readonly errno: number;
  /** The errno's symbolic name, e.g. `'EINVAL'`. */
  readonly code: string;
  /** The operation that failed, e.g. `'REGION_READ'` or `'connect'`. */
  readonly syscall: string;

  /**
   * @param errno - positive errno value
   * @param syscall - the operation that failed
   * @param detail - optional text appended to the message
   */
  constructor(errno: number, syscall: string, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall} failed: ${code}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'VfioUserError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/**
 * A device description is invalid: found when a {@link PciDevice} is
 * constructed or a {@link RegisterMap} is built, before anything listens.
 */
export class DeviceDescriptionError extends Error {
  /** Where in the description the problem is, e.g. `'bars[1].size'`. */
  readonly field: string;

  /**
   * @param field - path of the offending field in the description
   * @param message - what is wrong with it
   */
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'DeviceDescriptionError';
    this.field = field;
  }
}

/** The options given to a {@link VfioUserServer} or a client are invalid. */
export class OptionsError extends Error {
  /** The offending option, e.g. `'socket'`. */
  readonly field: string;

  /**
   * @param field - name of the offending option
   * @param message - what is wrong with it
   */
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'OptionsError';
    this.field = field;
  }
}

/** A vfio-user request got no reply within its timeout. */
export class TimeoutError extends VfioUserError {
  /** The timeout that expired, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * @param operation - the request that timed out
   * @param timeoutMs - how long it waited
   */
  constructor(operation: string, timeoutMs: number) {
    super(errnoValue('ETIMEDOUT') ?? 110, operation, `no reply within ${timeoutMs} ms`);
    this.name = 'TimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The peer sent a message that breaks the vfio-user protocol. */
export class ProtocolError extends VfioUserError {
  /**
   * @param operation - what was being done when the bad message arrived
   * @param detail - what is wrong with it
   */
  constructor(operation: string, detail: string) {
    super(errnoValue('EPROTO') ?? 71, operation, detail);
    this.name = 'ProtocolError';
  }
}

/** Builds a {@link VfioUserError} from an errno name such as `'ENOTCONN'`. */
export function errorFromCode(code: string, syscall: string, detail?: string): VfioUserError {
  return new VfioUserError(errnoValue(code) ?? 5, syscall, detail);
}

/** Why a {@link DmaError} was thrown. */
export type DmaErrorReason =
  /** Some byte of the range is in no mapping of the client. */
  | 'unmapped'
  /** A write to a mapping the client made read-only. */
  | 'read-only'
  /** A read of a mapping the client made write-only. */
  | 'write-only'
  /** A view or synchronous access to memory the client mapped without a file descriptor: use `dma.read()` / `dma.write()`. */
  | 'not-mappable'
  /** A view across two mappings, which are not one piece of memory here. */
  | 'not-contiguous'
  /** The client went away (or the server closed) before the transfer finished. */
  | 'disconnected'
  /** The client answered a DMA_READ / DMA_WRITE message with an error (its errno is `errno`). */
  | 'refused';

const DMA_ERRNO: Readonly<Record<Exclude<DmaErrorReason, 'refused'>, string>> = {
  unmapped: 'EFAULT',
  'read-only': 'EACCES',
  'write-only': 'EACCES',
  'not-mappable': 'EOPNOTSUPP',
  'not-contiguous': 'EFAULT',
  disconnected: 'ENOTCONN',
};

/**
 * A DMA access to client (guest) memory failed, before or during the
 * transfer. `reason` says why; `errno` is EFAULT (unmapped, not contiguous),
 * EACCES (read-only, write-only), EOPNOTSUPP (not mappable), ENOTCONN
 * (disconnected) or the client's own errno (refused).
 */
export class DmaError extends VfioUserError {
  /** Why the access failed. */
  readonly reason: DmaErrorReason;
  /** First byte of the access. */
  readonly iova: number;
  /** Length of the access in bytes. */
  readonly length: number;

  /**
   * @param reason - why it failed
   * @param iova - first byte of the access
   * @param length - its length
   * @param detail - what exactly, for the message
   * @param errno - the client's errno, for `'refused'`
   */
  constructor(reason: DmaErrorReason, iova: number, length: number, detail: string, errno?: number) {
    super(reason === 'refused' ? (errno ?? 5) : (errnoValue(DMA_ERRNO[reason]) ?? 5), 'dma', `[0x${iova.toString(16)}, +0x${length.toString(16)}): ${detail}`);
    this.name = 'DmaError';
    this.reason = reason;
    this.iova = iova;
    this.length = length;
  }
}
