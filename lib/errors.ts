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
 * system call of the addon, or an error reply from a vfio-user peer. Every
 * error this package throws or emits is one: {@link ConfigurationError}
 * (and its {@link DeviceDescriptionError} and {@link OptionsError}),
 * {@link HandlerError}, {@link TimeoutError} and {@link ProtocolError}
 * extend it.
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
 * A description, an option or a handler's answer is wrong: the root of the
 * errors that name what is wrong (`field`) rather than a failed operation.
 * Like every error of this package it is a {@link VfioUserError}, with
 * `code` `'EINVAL'`.
 */
export class ConfigurationError extends VfioUserError {
  /** Where the problem is, e.g. `'bars[1].size'` or `'socket'`. */
  readonly field: string;

  /**
   * @param field - path of the offending field
   * @param message - what is wrong with it
   * @param syscall - what was being set up
   */
  constructor(field: string, message: string, syscall: string) {
    super(errnoValue('EINVAL') ?? 22, syscall, message);
    this.name = 'ConfigurationError';
    this.message = `${field}: ${message}`;
    this.field = field;
  }
}

/**
 * A device description is invalid: found when a {@link PciDevice} is
 * constructed or a {@link RegisterMap} is built, before anything listens
 * (or, for a BAR handler given as a function, when the server is
 * constructed, before it listens).
 */
export class DeviceDescriptionError extends ConfigurationError {
  /**
   * @param field - path of the offending field in the description, e.g. `'bars[1].size'`
   * @param message - what is wrong with it
   */
  constructor(field: string, message: string) {
    super(field, message, 'describe device');
    this.name = 'DeviceDescriptionError';
  }
}

/** The options given to a {@link VfioUserServer} or a client are invalid. */
export class OptionsError extends ConfigurationError {
  /**
   * @param field - name of the offending option, e.g. `'socket'`
   * @param message - what is wrong with it
   */
  constructor(field: string, message: string) {
    super(field, message, 'options');
    this.name = 'OptionsError';
  }
}

/**
 * An argument of a call is wrong: a negative offset, a BAR index above 5,
 * a count that does not fit the protocol. Thrown before anything is sent.
 */
export class ArgumentError extends ConfigurationError {
  /**
   * @param argument - name of the offending argument, e.g. `'offset'`
   * @param message - what is wrong with it
   * @param operation - the call it was given to, e.g. `'REGION_READ'`
   */
  constructor(argument: string, message: string, operation: string) {
    super(argument, message, operation);
    this.name = 'ArgumentError';
    this.message = `${operation}: ${argument} ${message}`;
  }
}

/**
 * The server refused a region access (REGION_READ or REGION_WRITE). The
 * message names the region and the range, and why when the client can
 * tell: `REGION_READ of BAR0 [0x1000, +4) failed: EINVAL (past the end of
 * the region, size 0x1000)`.
 */
export class RegionAccessError extends VfioUserError {
  /** Region index: 0-5 the BARs, 6 the ROM, 7 config space, 8 VGA. */
  readonly region: number;
  /** First byte of the access. */
  readonly offset: number;
  /** Bytes accessed. */
  readonly count: number;

  /**
   * @param errno - the server's errno
   * @param command - `'REGION_READ'` or `'REGION_WRITE'`
   * @param region - region index
   * @param offset - first byte
   * @param count - bytes
   * @param reason - why, when known
   */
  constructor(errno: number, command: string, region: number, offset: number, count: number, reason?: string) {
    super(errno, command);
    this.name = 'RegionAccessError';
    this.message = `${command} of ${regionName(region)} [0x${offset.toString(16)}, +${count}) failed: ${this.code}${reason === undefined ? '' : ` (${reason})`}`;
    this.region = region;
    this.offset = offset;
    this.count = count;
  }
}

/** How people call a region: `'BAR0'`, `'ROM'`, `'config space'`. */
function regionName(region: number): string {
  if (region >= 0 && region <= 5) {
    return `BAR${region}`;
  }
  return ['ROM', 'config space', 'VGA'][region - 6] ?? `region ${region}`;
}

/**
 * A BAR handler or a hook misbehaved in a way the server can tell: it
 * returned something it must not (a value from a region handler, which
 * fills `data`; a value of the wrong type or width from a register's read
 * hook; a Promise: handlers and hooks are synchronous). The client's access
 * fails with `EIO` and the server emits this as `'error'`.
 */
export class HandlerError extends VfioUserError {
  /** Which handler, e.g. `'BAR 0 read handler'` or `'registers.ctrl read hook'`. */
  readonly handler: string;

  /**
   * @param handler - which handler misbehaved
   * @param detail - what it did
   */
  constructor(handler: string, detail: string) {
    super(errnoValue('EIO') ?? 5, handler, detail);
    this.name = 'HandlerError';
    this.message = `${handler}: ${detail}`;
    this.handler = handler;
  }
}

/**
 * A client's BAR access broke the BAR's access rules (its description's
 * `access`: sizes, alignment). The client gets `EINVAL`, the handler never
 * sees the access, and the server logs it as a warning: the device is fine.
 */
export class AccessRuleError extends VfioUserError {
  /**
   * @param bar - BAR number
   * @param offset - first byte of the access
   * @param count - bytes accessed
   * @param rule - the rule it broke
   */
  constructor(bar: number, offset: number, count: number, rule: string) {
    super(errnoValue('EINVAL') ?? 22, `BAR ${bar} access`);
    this.name = 'AccessRuleError';
    this.message = `BAR ${bar} refused ${count} bytes at 0x${offset.toString(16)}: ${rule}`;
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

/**
 * The addon is built against a system libvfio-user, which lacks our
 * library's extensions (`libvfio-user-ext.h`) that `feature` needs. `errno`
 * is ENOTSUP (`code` `'EOPNOTSUPP'`, its name on Linux); build the addon
 * with the package's own library (the default) to use it.
 */
export class LibraryFeatureError extends VfioUserError {
  /** What was asked for, e.g. `'interrupt mask and pending state'`. */
  readonly feature: string;

  /** @param feature - what needs our library */
  constructor(feature: string) {
    super(
      errnoValue('ENOTSUP') ?? 95,
      feature,
      "needs the package's own C library; the addon is built against a system libvfio-user",
    );
    this.name = 'LibraryFeatureError';
    this.feature = feature;
  }
}

/**
 * The device is stopped for migration (its migration state is `'stop'`,
 * `'stop-copy'` or `'resuming'`): it may do no DMA until it runs again.
 * Thrown by the DMA calls of a {@link PciDevice}; `code` is `'EBUSY'`.
 */
export class DeviceStoppedError extends VfioUserError {
  /** The migration state the device was in. */
  readonly state: string;

  /**
   * @param operation - what the device tried
   * @param state - the migration state it was in
   */
  constructor(operation: string, state: string) {
    super(errnoValue('EBUSY') ?? 16, operation, `the device is stopped for migration (state '${state}'): no DMA until it runs again`);
    this.name = 'DeviceStoppedError';
    this.state = state;
  }
}

/**
 * A migration stream that this device cannot load: not a stream of this
 * library, of another format version, from a different device, or cut short.
 * `code` is `'EINVAL'`; the client's MIG_DATA_WRITE (or its RESUMING to
 * STOP transition) fails with it.
 */
export class MigrationStreamError extends VfioUserError {
  /**
   * @param detail - what is wrong with the stream
   */
  constructor(detail: string) {
    super(errnoValue('EINVAL') ?? 22, 'migration stream', detail);
    this.name = 'MigrationStreamError';
  }
}

/**
 * The server refused a migration state transition (SET of
 * MIG_DEVICE_STATE): not an allowed arc, or the device failed it. Thrown
 * by the client; `errno` is the server's.
 */
export class MigrationTransitionError extends VfioUserError {
  /** The state the device was in before, as far as the client knows. */
  readonly from: string | undefined;
  /** The state asked for. */
  readonly to: string;

  /**
   * @param errno - the server's errno
   * @param from - the state before (undefined when unknown)
   * @param to - the state asked for
   */
  constructor(errno: number, from: string | undefined, to: string) {
    super(errno, 'MIG_DEVICE_STATE', `the device refused ${from ?? 'its state'} -> ${to}`);
    this.name = 'MigrationTransitionError';
    this.from = from;
    this.to = to;
  }
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
