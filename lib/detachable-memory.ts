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
 * the addon owns and will detach or unmap (message buffers, guest memory,
 * a mapped BAR), where the runtime allows both. Node 24+ refuse to transfer
 * such external memory anyway, and marking it there aborts a later detach
 * (or the process at exit).
 * @internal
 */
export function guardDetachable(memory: ArrayBufferLike): void {
  if (MARK_BEFORE_DETACH) {
    markAsUntransferable(memory);
  }
}
