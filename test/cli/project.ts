/**
 * A user's project for CLI tests: a folder whose node_modules links
 * `vfio-user` to this repository (so its devices and the CLI share one copy
 * of the package) and a `typescript`, either this repository's (5.x) or one
 * installed from the registry at test time (7.x), and @types/node.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { tempDir } from '../support/temp-dir';

export const ROOT = join(__dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');

/** Builds dist/ when lib/ is newer (the CLI runs compiled). */
export function buildDist(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-if-stale.js')], { cwd: ROOT, stdio: 'pipe' });
  chmodSync(CLI, 0o755);
}

/** A project with vfio-user linked, and `typescript` linked (5.x) or installed at `typescriptVersion`. */
export function makeProject(typescriptVersion?: string): string {
  const dir = tempDir('vfu-cli-project-');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'cli-project', version: '1.0.0', private: true }));
  if (typescriptVersion !== undefined) {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `typescript@${typescriptVersion}`], {
      cwd: dir,
      stdio: 'pipe',
    });
  }
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  // A device imports node: modules, so a project has @types/node.
  symlinkSync(dirname(require.resolve('@types/node/package.json')), join(dir, 'node_modules', '@types', 'node'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'vfio-user'));
  symlinkSync(CLI, join(dir, 'node_modules', '.bin', 'vfio-user'));
  if (typescriptVersion === undefined) {
    symlinkSync(dirname(require.resolve('typescript/package.json')), join(dir, 'node_modules', 'typescript'));
  }
  return dir;
}

export interface Run {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a command in `cwd`, collecting stdout and stderr together. */
export function start(command: string, args: readonly string[], cwd: string): Run {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** Resolves once `predicate` holds, or rejects with what the run printed. */
export async function waitFor(run: Run, predicate: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out; output so far:\n${run.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Pids of the processes whose command line has `needle`, read from /proc
 * (pgrep hangs under the sanitizer run's preloaded libasan).
 */
export function pidsWith(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
      continue;
    }
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').includes(needle)) {
        pids.push(Number(entry));
      }
    } catch {
      // The process ended while being looked at.
    }
  }
  return pids;
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

