/**
 * Errors that come from the addon and the C library, made into the
 * package's own error types.
 *
 * @packageDocumentation
 */
import { VfioUserError } from './errors';

/**
 * Native errors carry code/errno/syscall; make them {@link VfioUserError}s.
 * (They come from the addon's realm, so `instanceof Error` may not hold.)
 */
export function asVfioUserError(err: unknown, operation: string, detail?: string): Error {
  if (err instanceof VfioUserError) {
    return err;
  }
  const { errno, syscall, message } = (err ?? {}) as { errno?: unknown; syscall?: unknown; message?: unknown };
  if (typeof errno === 'number' && errno > 0) {
    return new VfioUserError(errno, typeof syscall === 'string' ? syscall : operation, detail ?? (typeof message === 'string' ? message : undefined));
  }
  return err instanceof Error ? err : new Error(typeof message === 'string' ? message : String(err));
}

/** A failure of the library itself (not of a handler): the addon names a vfu_* function. */
export function isLibraryError(err: Error): err is Error & { syscall: string; errno: number } {
  const { syscall, errno } = err as { syscall?: unknown; errno?: unknown };
  return typeof syscall === 'string' && syscall.startsWith('vfu_') && typeof errno === 'number';
}
