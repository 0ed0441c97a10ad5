/**
 * What the server asks the C library about a device while it runs: a
 * vector's mask and pending state, and whether the client logs dirty pages.
 *
 * @packageDocumentation
 */
import { irqIndexOf, type InterruptKind } from './constants';
import { guardDetachable } from './detachable-memory';
import { requireLibraryExtensions } from './library-features';
import type { DeviceContext } from './native';

/** irqVectorState()'s bits. */
export const VECTOR_MASKED = 1;
export const VECTOR_PENDING = 2;

/** A vector's {@link VECTOR_MASKED} and {@link VECTOR_PENDING} bits, as the library keeps them. */
export function vectorState(ctx: DeviceContext, kind: InterruptKind, vector: number): number {
  requireLibraryExtensions('interrupt mask and pending state');
  return ctx.irqVectorState(irqIndexOf(kind), vector);
}

/**
 * Tells the library which mapped pages the device wrote. While the client
 * logs no dirty pages (the library's granule is 0, read straight from its
 * memory) that costs nothing; with a system library, which hides the
 * granule, every write asks the library.
 */
export function dirtyMarker(ctx: DeviceContext): (iova: number, length: number) => void {
  const memory = ctx.dirtyGranule();
  if (memory === undefined) {
    return (iova, length) => ctx.markDirty(iova, length);
  }
  guardDetachable(memory);
  const granule = new Uint32Array(memory);
  return (iova, length) => {
    if ((granule[0] | granule[1]) !== 0) {
      ctx.markDirty(iova, length);
    }
  };
}
