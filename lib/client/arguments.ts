/**
 * Argument checks and conversions shared by the client's layers.
 *
 * @packageDocumentation
 */
import { irqIndexOf, type InterruptKind } from '../constants';

/** The IRQ index of an interrupt kind, or a raw index as given. */
export function irqIndex(kind: InterruptKind | number): number {
  return typeof kind === 'number' ? kind : irqIndexOf(kind);
}

/** Throws unless `value` is an integer from 0 to `max`. */
export function checkRange(name: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, not ${value}`);
  }
}
