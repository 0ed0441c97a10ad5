/**
 * Guarding memory that the addon hands to JavaScript and later detaches
 * (library message buffers, guest memory mappings).
 *
 * @packageDocumentation
 */
import { markAsUntransferable } from 'node:worker_threads';

/**
 * Node 24 and later refuse to detach an ArrayBuffer marked untransferable,
 * and the addon's detach then aborts the process; before 24 the mark and the
 * detach go together.
 */
const MARK_BEFORE_DETACH = Number(process.versions.node.split('.')[0]) < 24;

/**
 * Keeps code from transferring away (structuredClone, postMessage) memory
 * the addon will detach, where the runtime allows both. On Node 24+ the
 * detach alone is what keeps a view from outliving the memory.
 * @internal
 */
export function guardDetachable(memory: ArrayBufferLike): void {
  if (MARK_BEFORE_DETACH) {
    markAsUntransferable(memory);
  }
}
