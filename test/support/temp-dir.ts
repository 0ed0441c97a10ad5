/**
 * Temp directories that remove themselves: every directory made here is
 * removed after the test file that made it, whether its tests passed,
 * failed or timed out, so no test leaves anything behind in the temp dir.
 * (test/qemu/harness/resources.ts does the same for the QEMU tests, along
 * with the processes they start.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made = new Set<string>();

/**
 * A fresh private directory under the system temp dir, removed after this
 * test file. Keep the prefix short: a UNIX socket path must fit in 108 bytes.
 */
export function tempDir(prefix = 'vfu-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

/** Removes a directory made by tempDir now rather than after the file. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

// Each test file loads its own copy of this module, so this hook belongs to
// the file that imported it and runs after all its tests.
afterAll(() => {
  for (const dir of made) {
    removeTempDir(dir);
  }
});
