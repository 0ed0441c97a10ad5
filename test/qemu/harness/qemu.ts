/**
 * Starts QEMU without a guest: machine q35 under the qtest accelerator, so
 * the test itself plays the CPU through the qtest socket, with QMP beside it
 * for machine-level commands and one vfio-user-pci device attached to the
 * device under test's socket.
 */
import { ChildProcess } from 'node:child_process';
import { createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';

import { QmpConnection } from 'vfio-user/guest';

import { findQemu } from './find-qemu';
import { QtestConnection } from './qtest';
import { exited, makeTempDir, onCleanup, removeTempDir, spawnTracked, stopProcess } from './resources';

export interface QemuOptions {
  /** The vfio-user socket of the device under test. */
  deviceSocket: string;
  /** qdev id of the vfio-user-pci device (default "vfu0"). */
  deviceId?: string;
  /** Extra properties of the vfio-user-pci device, e.g. {"x-no-posted-writes": true}. */
  deviceProperties?: Record<string, unknown>;
  /**
   * Back guest RAM with a shared memfd, so that the device receives file
   * descriptors with its DMA mappings and can map guest memory directly.
   */
  memfd?: boolean;
  /** Guest RAM in MiB (default 128). */
  memoryMiB?: number;
  /** Extra command-line arguments, appended last. */
  extraArgs?: string[];
  /** Milliseconds to wait for QEMU to connect to qtest (default 15000). */
  startTimeoutMs?: number;
}

/** A running QEMU with its qtest and QMP connections. */
export class Qemu {
  private stopping: Promise<void> | undefined;
  private readonly removeCleanup: () => void;

  private constructor(
    readonly process: ChildProcess,
    readonly qtest: QtestConnection,
    readonly qmp: QmpConnection,
    readonly args: string[],
    private readonly output: { text: string },
    private readonly listener: Server,
    private readonly dir: string,
  ) {
    this.removeCleanup = onCleanup(() => this.kill());
  }

  /** Everything QEMU wrote to stdout and stderr so far. */
  get log(): string {
    return this.output.text;
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Starts QEMU and waits until both of its control connections are up. */
  static async start(options: QemuOptions): Promise<Qemu> {
    const found = findQemu();
    if (!found.ok) {
      throw new Error(found.reason);
    }
    const dir = makeTempDir('vfu-qemu-');
    const qtestPath = join(dir, 'qtest.sock');
    const qmpPath = join(dir, 'qmp.sock');
    const device = {
      driver: 'vfio-user-pci',
      id: options.deviceId ?? 'vfu0',
      socket: { type: 'unix', path: options.deviceSocket },
      ...options.deviceProperties,
    };
    const memory = options.memoryMiB ?? 128;
    const args = [
      '-machine',
      options.memfd ? 'q35,memory-backend=mem' : 'q35',
      '-accel',
      'qtest',
      '-qtest',
      `unix:${qtestPath}`,
      '-qtest-log',
      'none',
      '-nodefaults',
      '-display',
      'none',
      '-m',
      `${memory}M`,
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
      // QEMU dies with us even if this process is killed outright.
      '-run-with',
      'exit-with-parent=on',
      ...(options.memfd ? ['-object', `memory-backend-memfd,id=mem,size=${memory}M,share=on`] : []),
      '-device',
      JSON.stringify(device),
      ...(options.extraArgs ?? []),
    ];

    // QEMU connects to the qtest socket as a client: listen before starting it.
    const listener = createServer();
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(qtestPath, () => resolve());
    });
    const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));

    const child = spawnTracked(found.qemu.path, args);
    const output = { text: '' };
    const collect = (chunk: Buffer): void => {
      output.text += chunk.toString('utf8');
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);

    const failure = (why: string): Error =>
      new Error(`QEMU ${why}\ncommand: ${found.qemu.path} ${args.join(' ')}\noutput:\n${output.text}`);
    const timeoutMs = options.startTimeoutMs ?? 15000;
    let timer: NodeJS.Timeout | undefined;
    const died = exited(child).then(() => {
      throw failure(`exited during start (code ${child.exitCode}, signal ${child.signalCode})`);
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(failure(`did not start within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const socket = await Promise.race([accepted, died, late]);
      const qtest = new QtestConnection(socket);
      const qmp = await Promise.race([QmpConnection.open(qmpPath, timeoutMs), died, late]);
      // A round trip proves the machine is up and qtest is being served.
      await Promise.race([qtest.command('endianness'), died, late]);
      return new Qemu(child, qtest, qmp, args, output, listener, dir);
    } catch (err) {
      await stopProcess(child, 'SIGKILL');
      listener.close();
      removeTempDir(dir);
      throw err;
    } finally {
      clearTimeout(timer);
      died.catch(() => undefined);
    }
  }

  /** Asks QEMU to quit over QMP and waits for it to exit (SIGKILL if it hangs). */
  async quit(timeoutMs = 5000): Promise<void> {
    if (this.stopping === undefined) {
      this.stopping = (async () => {
        const gone = exited(this.process);
        try {
          await this.qmp.quit();
        } catch {
          // The connection may close before the reply arrives; the exit decides.
        }
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((r) => {
          timer = setTimeout(() => r('late'), timeoutMs);
        });
        const outcome = await Promise.race([gone, late]);
        clearTimeout(timer);
        if (outcome === 'late') {
          await stopProcess(this.process, 'SIGKILL');
        }
        this.release();
      })();
    }
    return this.stopping;
  }

  /** Kills QEMU at once with SIGKILL, as a crash would, and waits for it to be gone. */
  async kill(): Promise<void> {
    if (this.stopping === undefined) {
      this.stopping = (async () => {
        await stopProcess(this.process, 'SIGKILL');
        this.release();
      })();
    }
    return this.stopping;
  }

  private release(): void {
    this.qtest.close();
    this.qmp.close();
    this.listener.close();
    removeTempDir(this.dir);
    this.removeCleanup();
  }
}
