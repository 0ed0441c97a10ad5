/**
 * Argument checks and conversions shared by the client's layers.
 *
 * @packageDocumentation
 */
import { IrqType, irqIndexOf, type EventInterruptKind, type InterruptKind } from '../constants';
import { ArgumentError } from '../errors';

/** The IRQ index of an interrupt kind, or a raw index as given. */
export function irqIndex(kind: InterruptKind | EventInterruptKind | number): number {
  if (typeof kind === 'number') {
    return kind;
  }
  return kind === 'err' ? IrqType.ERR : kind === 'req' ? IrqType.REQ : irqIndexOf(kind);
}

/** Throws an {@link ArgumentError} unless `value` is an integer from 0 to `max`. */
export function checkRange(operation: string, name: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    const limit = max === Number.MAX_SAFE_INTEGER ? '2^53 - 1' : `0x${max.toString(16)}`;
    throw new ArgumentError(name, `must be an integer from 0 to ${limit}, not ${String(value)}`, operation);
  }
}

/** Throws an {@link ArgumentError} unless region, offset and count can go in a region access. */
export function checkAccess(operation: string, region: number, offset: number, count: number): void {
  checkRange(operation, 'region', region, 0xffffffff);
  checkRange(operation, 'offset', offset, Number.MAX_SAFE_INTEGER);
  checkRange(operation, 'count', count, 0xffffffff);
}
