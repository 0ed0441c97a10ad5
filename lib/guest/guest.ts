/**
 * A real Linux guest under QEMU (TCG) with vfio-user devices attached: boots
 * the kernel with a generated initramfs, runs a shell script inside, and
 * hands back its output and exit status. Devices are `PciDevice`s served from
 * this process, or sockets of devices served elsewhere.
 *
 * Everything the guest started (QEMU, in-process servers, sockets, the temp
 * directory) is removed by `stop()`, which `runGuest` always calls.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { PciDevice } from '../device';
import { VfioUserServer } from '../server';
import { buildGuestImage, BEGIN_MARKER, EXIT_MARKER, type GuestImageOptions } from './guest-image';
import { findGuestKit, type GuestKitOptions } from './guest-kit';
import { QmpConnection } from './qmp';

/** One vfio-user-pci device of the guest. */
export interface GuestDevice {
  /** A device to serve from this process (on a socket in the guest's temp directory). */
  device?: PciDevice;
  /** Or the socket of a device served elsewhere. */
  socket?: string;
  /** qdev id (default `vfu0`, `vfu1`, ... by position). */
  id?: string;
  /**
   * Place the device behind its own `pcie-root-port`: needed for a bus reset
   * (the device's only reset method when it has neither FLR nor PM) and for
   * hot-unplug/replug.
   */
  rootPort?: boolean;
  /** Extra vfio-user-pci properties, e.g. `{ 'x-msg-timeout': 10000 }`. */
  properties?: Record<string, unknown>;
}

/** How to boot a guest and what to run in it. */
export interface GuestOptions extends GuestImageOptions, GuestKitOptions {
  /** The devices to attach, in PCI slot order. */
  devices?: readonly GuestDevice[];
  /** Guest RAM in MiB (default 256). */
  memoryMiB?: number;
  /**
   * Back guest RAM with a shared memfd (default true), so devices receive
   * file descriptors with their DMA mappings; false sends DMA as messages.
   */
  sharedMemory?: boolean;
  /** Milliseconds from start to the script's end before the guest is killed (default 180000: TCG on busy machines is slow). */
  timeoutMs?: number;
  /** Extra kernel command-line arguments. */
  kernelArgs?: string;
  /** Extra QEMU arguments, appended last. */
  qemuArgs?: readonly string[];
}

/** What a finished guest reports. */
export interface GuestResult {
  /** The script's exit status. */
  exitCode: number;
  /** What the script printed (stdout and stderr, `\n` line ends). */
  output: string;
  /** Everything on the serial console, boot messages included. */
  console: string;
  /** Wall-clock milliseconds from start to power-off. */
  durationMs: number;
}

/** The guest did not finish its script: timeout, crash, or QEMU failed. Carries the console so far. */
export class GuestError extends Error {
  constructor(
    message: string,
    readonly console: string,
  ) {
    super(`${message}\n--- guest console (last 4000 characters) ---\n${console.slice(-4000)}`);
    this.name = 'GuestError';
  }
}

interface Attached {
  id: string;
  bus?: string;
  socket: string;
  properties?: Record<string, unknown>;
  server?: VfioUserServer;
}

function deviceJson(device: Attached): string {
  return JSON.stringify({
    driver: 'vfio-user-pci',
    id: device.id,
    ...(device.bus === undefined ? {} : { bus: device.bus }),
    socket: { type: 'unix', path: device.socket },
    ...device.properties,
  });
}

/** A running guest. */
export class Guest {
  private consoleText = '';
  private readonly started = Date.now();
  private readonly outcome: Promise<GuestResult>;
  private readonly watchers = new Set<() => void>();
  private stopped = false;
  /** Messages and errors of the in-process servers, for failure reports. */
  readonly deviceLog: string[] = [];

  private constructor(
    private readonly qemu: ChildProcess,
    /** QEMU's QMP connection, for machine-level commands. */
    readonly qmp: QmpConnection,
    private readonly dir: string,
    private readonly attached: Attached[],
    timeoutMs: number,
  ) {
    qemu.stdout?.setEncoding('utf8');
    qemu.stderr?.setEncoding('utf8');
    const collect = (chunk: string): void => {
      this.consoleText += chunk.replace(/\r/g, '');
      this.watchers.forEach((w) => w());
    };
    qemu.stdout?.on('data', collect);
    qemu.stderr?.on('data', collect);
    // Typing into a guest that just powered off must not crash the test.
    qemu.stdin?.on('error', () => undefined);
    this.outcome = new Promise<GuestResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new GuestError(`the guest did not finish within ${timeoutMs} ms`, this.consoleText));
        qemu.kill('SIGKILL');
      }, timeoutMs);
      qemu.once('exit', (code, signal) => {
        clearTimeout(timer);
        const exit = EXIT_MARKER.exec(this.consoleText);
        if (exit === null) {
          reject(new GuestError(`QEMU exited (code ${code}, signal ${signal}) before the script finished`, this.consoleText));
          return;
        }
        resolve({ exitCode: Number(exit[1]), output: this.output, console: this.consoleText, durationMs: Date.now() - this.started });
      });
    });
    // A caller that only uses waitForOutput must not see an unhandled rejection.
    this.outcome.catch(() => undefined);
    for (const device of attached) {
      device.server?.on('log', (level, message) => this.deviceLog.push(`${device.id} log[${level}]: ${message}`));
    }
  }

  /** Boots a guest; resolves once QEMU runs and its QMP answers (the kernel is still booting). */
  static async start(options: GuestOptions): Promise<Guest> {
    const kit = findGuestKit(options);
    const dir = mkdtempSync(join(tmpdir(), 'vfu-guest-'));
    const attached: Attached[] = [];
    try {
      const initrd = join(dir, 'initramfs.gz');
      writeFileSync(initrd, buildGuestImage(kit, options));
      const memory = options.memoryMiB ?? 256;
      const shared = options.sharedMemory ?? true;
      const qmpPath = join(dir, 'qmp.sock');
      const args = [
        '-machine', shared ? 'q35,memory-backend=mem' : 'q35',
        ...(shared ? ['-object', `memory-backend-memfd,id=mem,size=${memory}M,share=on`] : []),
        '-m', `${memory}M`, '-smp', '1', '-accel', 'tcg',
        '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio',
        '-kernel', kit.kernel, '-initrd', initrd,
        '-append', `console=ttyS0 quiet panic=-1 ${options.kernelArgs ?? ''}`.trim(),
        '-qmp', `unix:${qmpPath},server=on,wait=off`,
        // QEMU dies with this process even when it is killed outright.
        '-run-with', 'exit-with-parent=on',
      ];
      (options.devices ?? []).forEach((spec, i) => {
        const id = spec.id ?? `vfu${i}`;
        if ((spec.device === undefined) === (spec.socket === undefined)) {
          throw new Error(`guest device ${id}: give exactly one of device and socket`);
        }
        const device: Attached = { id, socket: spec.socket ?? join(dir, `${id}.sock`), properties: spec.properties };
        if (spec.device !== undefined) {
          device.server = new VfioUserServer(spec.device, { socket: device.socket, logLevel: 4 });
        }
        attached.push(device);
        if (spec.rootPort) {
          device.bus = `${id}-port`;
          args.push('-device', `pcie-root-port,id=${device.bus},chassis=${i + 1},bus=pcie.0`);
        }
        args.push('-device', deviceJson(device));
      });
      args.push(...(options.qemuArgs ?? []));
      const qemu = spawn(kit.qemu, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      const qmp = await waitForQmp(qmpPath, qemu);
      return new Guest(qemu, qmp, dir, attached, options.timeoutMs ?? 180000);
    } catch (err) {
      for (const d of attached) {
        await d.server?.close();
      }
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Everything on the serial console so far. */
  get console(): string {
    return this.consoleText;
  }

  /** What the script printed so far. */
  get output(): string {
    const begin = this.consoleText.indexOf(`${BEGIN_MARKER}\n`);
    if (begin < 0) {
      return '';
    }
    const text = this.consoleText.slice(begin + BEGIN_MARKER.length + 1);
    const end = text.search(EXIT_MARKER);
    return end < 0 ? text : text.slice(0, end);
  }

  /** The server of an in-process device, by qdev id. */
  server(id = 'vfu0'): VfioUserServer {
    const server = this.attached.find((d) => d.id === id)?.server;
    if (server === undefined) {
      throw new Error(`guest device ${id} is not served from this process`);
    }
    return server;
  }

  /** Resolves when the script's output matches `pattern`; rejects on timeout or when the guest ends first. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 120000): Promise<RegExpExecArray> {
    const regex = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = regex.exec(this.output);
        if (match !== null) {
          done();
          resolve(match);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new GuestError(`the guest did not print ${regex} within ${timeoutMs} ms`, this.consoleText));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
      this.outcome.then(
        () => {
          check();
          if (this.watchers.has(check)) {
            done();
            reject(new GuestError(`the guest finished without printing ${regex}`, this.consoleText));
          }
        },
        (err: unknown) => {
          done();
          reject(err);
        },
      );
      check();
    });
  }

  /** Types `text` on the guest's console: the script reads it from stdin. */
  send(text: string): void {
    this.qemu.stdin?.write(text);
  }

  /** Resolves when the script has finished and the guest powered off. */
  wait(): Promise<GuestResult> {
    return this.outcome;
  }

  /**
   * Hot-unplugs device `id` and plugs a new one in its place at `socket`
   * (e.g. after its server died and was restarted). The device must be
   * behind a root port and the guest must support PCIe hotplug (Linux's
   * pciehp does); resolves once QEMU has attached the new device.
   */
  async replug(id: string, socket: string): Promise<void> {
    const device = this.attached.find((d) => d.id === id);
    if (device?.bus === undefined) {
      throw new Error(`guest device ${id} is not behind a root port: it cannot be replugged`);
    }
    const since = this.qmp.events.length;
    await this.qmp.execute('device_del', { id });
    // The guest's hotplug driver takes its time (pciehp waits 5 s for the attention button).
    await this.qmp.waitEvent('DEVICE_DELETED', 60_000, since);
    await device.server?.close();
    device.server = undefined;
    device.socket = socket;
    await this.qmp.execute('device_add', JSON.parse(deviceJson(device)) as Record<string, unknown>);
  }

  /** Kills QEMU (if still running), closes in-process servers and removes temp files. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    if (this.qemu.exitCode === null && this.qemu.signalCode === null) {
      const gone = new Promise((r) => this.qemu.once('exit', r));
      this.qemu.kill('SIGKILL');
      await gone;
    }
    this.qmp.close();
    for (const d of this.attached) {
      await d.server?.close();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function waitForQmp(path: string, qemu: ChildProcess): Promise<QmpConnection> {
  let stderr = '';
  const collect = (chunk: Buffer): void => {
    stderr += chunk.toString();
  };
  qemu.stderr?.on('data', collect);
  const died = new Promise<never>((_, reject) => {
    qemu.once('exit', (code) => reject(new Error(`QEMU exited during start (code ${code}): ${stderr}`)));
  });
  died.catch(() => undefined);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        return await Promise.race([QmpConnection.open(path), died]);
      } catch (err) {
        if (qemu.exitCode !== null || attempt > 300) {
          qemu.kill('SIGKILL');
          throw err;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    qemu.stderr?.off('data', collect);
  }
}

/**
 * Boots a guest, runs `options.script` in it and returns its result; always
 * tears the guest down, also when it fails or times out.
 */
export async function runGuest(options: GuestOptions): Promise<GuestResult> {
  const guest = await Guest.start(options);
  try {
    return await guest.wait();
  } finally {
    await guest.stop();
  }
}
