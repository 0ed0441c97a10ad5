/**
 * What the benchmark and soak runners share: where the package is, counts
 * taken from the environment, building the C programs, and starting servers.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The C compiler: `$CC`, else `cc`. */
export const CC = process.env.CC ?? 'cc';

/** Flags every bench/*.c program is compiled with (run from the package root). */
export const C_FLAGS: readonly string[] = ['-O2', '-std=gnu11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Ivendor/libvfio-user/include'];

/** The folder of the vfio-user package, searched upwards from `from`. */
export function findRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vfio-user') {
      return dir;
    }
  }
  throw new Error('cannot find the vfio-user package root');
}

/** A positive integer from the environment variable `name`, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer`);
  }
  return value;
}

/**
 * Runs `cmd` in `cwd` to completion. On failure it prints the command's
 * output to stderr and throws `<what> failed (<reason>)`.
 */
export function run(cwd: string, cmd: string, args: readonly string[], what: string): void {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    process.stderr.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    throw new Error(`${what} failed (${result.error?.message ?? `exit ${String(result.status)}`})`);
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `socket` exists, polling every 10 ms; throws `failure` if
 * `proc` exits first or 15 s pass.
 */
export async function waitForSocket(socket: string, proc: ChildProcess, failure: string): Promise<void> {
  for (let waited = 0; !fs.existsSync(socket); waited += 10) {
    if (proc.exitCode !== null || waited > 15000) {
      throw new Error(failure);
    }
    await sleep(10);
  }
}

/** argv to run on `cpu` (through taskset), or as it is when `cpu` is undefined. */
export function onCpu(cpu: string | undefined, argv: readonly string[]): [string, string[]] {
  return cpu === undefined ? [argv[0], argv.slice(1)] : ['taskset', ['-c', cpu, ...argv]];
}

/** Asks a child to stop (SIGTERM), kills it if it has not in 5 s, and waits for it. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
