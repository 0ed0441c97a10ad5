/**
 * The device under test is pluggable: anything that serves vfio-user on a
 * UNIX socket. A `DeviceFactory` starts one and says where its socket is;
 * the QEMU tests never care whether it is the C sample server in another
 * process or a TypeScript device in this one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { REPO_ROOT } from './find-qemu';
import { exited, onCleanup, spawnTracked, stopProcess } from './resources';

export interface RunningDevice {
  /** The vfio-user socket QEMU is given. */
  socketPath: string;
  /** Stops serving; afterwards the socket no longer accepts clients. */
  stop(): Promise<void>;
  /** Whatever the device printed, for failure messages. */
  log(): string;
}

/**
 * Starts a device serving on a socket inside `dir` (a private temp dir that
 * the harness removes later). Resolves once a client may connect.
 */
export type DeviceFactory = (dir: string) => Promise<RunningDevice>;

/**
 * The C sample device: build-c/sample_server, built by `bash scripts/build-c.sh`
 * (and `npm install`), or wherever $VFU_SAMPLE_SERVER says.
 */
export const SAMPLE_SERVER = process.env.VFU_SAMPLE_SERVER || join(REPO_ROOT, 'build-c', 'sample_server');

/**
 * Runs the C sample device (vendor/libvfio-user/samples/sample_server.c) as
 * a child process. It prints "serving on PATH" once its socket listens and
 * removes the socket when it ends on SIGTERM.
 */
export function sampleServer(program = SAMPLE_SERVER, env: NodeJS.ProcessEnv = {}): DeviceFactory {
  return async (dir) => {
    if (!existsSync(program)) {
      throw new Error(`${program} does not exist: build it with \`bash scripts/build-c.sh\``);
    }
    const socketPath = join(dir, 'sample.sock');
    const child = spawnTracked(program, [socketPath], { env: { ...process.env, ...env } });
    let output = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString('utf8');
        if (output.includes(`serving on ${socketPath}`)) {
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      void exited(child).then(() =>
        reject(new Error(`${program} exited before serving (code ${child.exitCode}): ${output}`)),
      );
      setTimeout(() => reject(new Error(`${program} did not start within 10 s: ${output}`)), 10000).unref();
    });
    const stop = async (): Promise<void> => {
      removeCleanup();
      await stopProcess(child, 'SIGTERM');
    };
    const removeCleanup = onCleanup(stop);
    try {
      await ready;
    } catch (err) {
      await stop();
      throw err;
    }
    return { socketPath, stop, log: () => output };
  };
}
