/**
 * What handlers and hooks may return. They are called synchronously while
 * the library serves a request, so a Promise cannot be waited for; and a
 * region read handler fills the `data` it is given, so returning the bytes
 * instead would silently answer zeros. Both are refused with a
 * {@link HandlerError}, which fails the request.
 *
 * @packageDocumentation
 */
import { HandlerError } from './errors';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** A short description of a value for an error message. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) {
    return String(value);
  }
  if (typeof value === 'string') {
    return `a string (${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)})`;
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${typeof value} ${String(value)}${typeof value === 'bigint' ? 'n' : ''}`;
  }
  if (value instanceof Uint8Array) {
    return `a ${value.constructor.name} of ${value.length} bytes`;
  }
  return typeof value === 'function' ? 'a function' : `an object (${Object.prototype.toString.call(value)})`;
}

/**
 * Throws when a handler or hook returned a Promise (or any thenable). The
 * promise's rejection, if it comes, is taken here so that it does not
 * become an unhandled rejection: the call has already failed.
 */
export function refuseThenable(returned: unknown, handler: string): void {
  if (!isThenable(returned)) {
    return;
  }
  try {
    returned.then(undefined, () => undefined);
  } catch {
    // A thenable whose then() throws has nothing left to reject.
  }
  throw new HandlerError(handler, 'returned a Promise: handlers and hooks are synchronous, so the call failed without waiting for it');
}

/**
 * Checks what a region read handler returned: nothing, `data` itself, or a
 * number (what Buffer's write methods return) are fine; anything else means
 * the handler meant to return the bytes rather than fill `data`.
 */
export function checkReadResult(returned: unknown, data: Buffer, handler: string): void {
  if (returned === undefined || returned === data || typeof returned === 'number') {
    return;
  }
  refuseThenable(returned, handler);
  throw new HandlerError(
    handler,
    `returned ${describeValue(returned)}: a read handler fills data (${data.length} bytes) in place and returns nothing`,
  );
}
