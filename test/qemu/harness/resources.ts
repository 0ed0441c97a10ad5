/**
 * Everything the QEMU tests start or create is registered here, so that it
 * is gone afterwards whatever happened: a failed assertion, a timeout, an
 * exception in a callback, or the test process itself exiting.
 *
 * Child processes are also started so that they die with us when we are
 * killed outright (see `spawnTracked`), which no exit handler can cover.
 */
import { ChildProcess, spawn, SpawnOptions, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const processes = new Set<ChildProcess>();
const directories = new Set<string>();
const cleanups = new Set<() => void | Promise<void>>();

let hooked = false;

/** On any exit of this process, synchronously kill and remove what is left. */
function hookExit(): void {
  if (hooked) {
    return;
  }
  hooked = true;
  process.on('exit', () => {
    for (const child of processes) {
      killNow(child);
    }
    for (const dir of directories) {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

function killNow(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone between the check and the kill.
    }
  }
}

let pdeathsigWorks: boolean | undefined;

/**
 * Whether util-linux's setpriv can set a parent-death signal here: with it a
 * child is killed by the kernel as soon as this process dies, even by SIGKILL.
 */
function canUsePdeathsig(): boolean {
  if (pdeathsigWorks === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore' });
    pdeathsigWorks = probe.status === 0;
  }
  return pdeathsigWorks;
}

/**
 * Spawns a process that is killed at cleanup and when this process exits.
 * stdin is closed; stdout and stderr are pipes unless `options.stdio` says
 * otherwise.
 */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  hookExit();
  const [cmd, argv] = canUsePdeathsig()
    ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  processes.add(child);
  child.once('exit', () => processes.delete(child));
  // Reported through the exit event; an unhandled 'error' would crash jest.
  child.on('error', () => undefined);
  return child;
}

/** Resolves when the process has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
}

/**
 * Stops a process: `signal` first, SIGKILL if it is still there after
 * `graceMs`. Resolves once it has exited.
 */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    processes.delete(child);
    return;
  }
  const gone = exited(child);
  try {
    process.kill(child.pid, signal);
  } catch {
    // It exited in the meantime.
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  if ((await Promise.race([gone, late])) === 'late') {
    killNow(child);
    await gone;
  }
  clearTimeout(timer);
  processes.delete(child);
}

/**
 * A fresh private directory under the system temp dir, removed at cleanup.
 * Kept short: a UNIX socket path must fit in 108 bytes.
 */
export function makeTempDir(prefix = 'vfu-qemu-'): string {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  directories.add(dir);
  return dir;
}

/** Removes a directory made by makeTempDir now rather than at cleanup. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  directories.delete(dir);
}

/** Registers an extra asynchronous cleanup step; returns its remover. */
export function onCleanup(step: () => void | Promise<void>): () => void {
  cleanups.add(step);
  return () => cleanups.delete(step);
}

/**
 * Runs every registered cleanup step, stops every tracked process and
 * removes every temp directory. Safe to call repeatedly; errors are
 * collected and thrown together after everything has been attempted.
 */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  for (const step of [...cleanups].reverse()) {
    cleanups.delete(step);
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  await Promise.all([...processes].map((child) => stopProcess(child, 'SIGKILL', 1000)));
  for (const dir of directories) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      errors.push(err);
    }
    directories.delete(dir);
  }
  if (errors.length === 1) {
    throw errors[0];
  }
  if (errors.length > 1) {
    throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
  }
}

/** What is still alive or present: for tests of the cleanup itself. */
export function leftovers(): { processes: number; directories: string[] } {
  return { processes: processes.size, directories: [...directories] };
}
