/**
 * Finds a QEMU that can attach a vfio-user device, or says why there is none.
 *
 * Order: `$QEMU` (used alone when set: an explicit choice is never replaced
 * by a guess), then `.qemu/bin/qemu-system-x86_64` as installed by
 * scripts/get-qemu.sh, then `qemu-system-x86_64` on the PATH.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');

export interface QemuBinary {
  /** Absolute path of the program to run. */
  path: string;
  /** First line of `--version`, e.g. "QEMU emulator version 11.1.3 (...)". */
  version: string;
  /** Where it was found: "$QEMU", "scripts/get-qemu.sh" or "PATH". */
  source: string;
}

export type QemuLookup = { ok: true; qemu: QemuBinary } | { ok: false; reason: string };

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, searchPath = ''): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, name))) {
      return join(dir, name);
    }
  }
  return undefined;
}

/** Checks one candidate; a reason string when it cannot be used. */
function probe(path: string, source: string): QemuBinary | string {
  if (!isExecutable(path)) {
    return `${path} (${source}) is not an executable file`;
  }
  const version = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 20000 });
  if (version.status !== 0) {
    return `${path} (${source}) failed to run: ${(version.stderr || String(version.error)).trim()}`;
  }
  const devices = spawnSync(path, ['-nodefaults', '-machine', 'none', '-device', 'help'], {
    encoding: 'utf8',
    timeout: 20000,
  });
  const firstLine = version.stdout.split('\n')[0].trim();
  if (!/"vfio-user-pci"/.test(devices.stdout)) {
    return `${path} (${source}, ${firstLine}) has no vfio-user-pci device (QEMU 10.1 or newer is needed)`;
  }
  return { path, version: firstLine, source };
}

/**
 * Looks for a usable QEMU with the given environment ($QEMU, $PATH) and
 * repository root, without caching: see `findQemu`.
 */
export function lookupQemu(env: NodeJS.ProcessEnv = process.env, repoRoot = REPO_ROOT): QemuLookup {
  const explicit = env.QEMU;
  if (explicit !== undefined && explicit !== '') {
    const found = probe(resolve(explicit), '$QEMU');
    return typeof found === 'string' ? { ok: false, reason: found } : { ok: true, qemu: found };
  }
  const rejected: string[] = [];
  const candidates: Array<[string | undefined, string]> = [
    [join(repoRoot, '.qemu', 'bin', 'qemu-system-x86_64'), 'scripts/get-qemu.sh'],
    [onPath('qemu-system-x86_64', env.PATH), 'PATH'],
  ];
  for (const [path, source] of candidates) {
    if (path === undefined || !isExecutable(path)) {
      continue;
    }
    const found = probe(path, source);
    if (typeof found !== 'string') {
      return { ok: true, qemu: found };
    }
    rejected.push(found);
  }
  const tried = rejected.length > 0 ? `; tried: ${rejected.join('; ')}` : '';
  return {
    ok: false,
    reason:
      'no QEMU with vfio-user-pci: run `bash scripts/get-qemu.sh` (installs QEMU into .qemu/) ' +
      `or set QEMU=/path/to/qemu-system-x86_64${tried}`,
  };
}

let cached: QemuLookup | undefined;

/** `lookupQemu` once per process; later calls return the same answer. */
export function findQemu(): QemuLookup {
  cached ??= lookupQemu();
  return cached;
}
