/**
 * A client for QMP, QEMU's JSON control protocol: QEMU greets with
 * `{"QMP": ...}`, the client sends `qmp_capabilities` before anything else,
 * then each command gets one `{"return": ...}` or `{"error": ...}` carrying
 * the command's `id`, while `{"event": ...}` messages may arrive at any time.
 * Used by the guest harness and by the package's QEMU tests.
 */
import { connect, Socket } from 'node:net';

/** A command QEMU answered with an error. */
export class QmpError extends Error {
  constructor(
    /** The command that failed. */
    readonly command: string,
    /** QEMU's error class, e.g. `GenericError`. */
    readonly errorClass: string,
    /** QEMU's description of the error. */
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  /** Its name, e.g. `DEVICE_DELETED`. */
  event: string;
  /** Its details, per event. */
  data?: Record<string, unknown>;
  /** When QEMU sent it. */
  timestamp?: { seconds: number; microseconds: number };
}

/** One PCI function as `query-pci` describes it (the parts of it used here). */
export interface QmpPciDevice {
  bus: number;
  slot: number;
  function: number;
  class_info: { class: number; desc?: string };
  id: { vendor: number; device: number; subsystem?: number; 'subsystem-vendor'?: number };
  irq?: number;
  irq_pin?: number;
  qdev_id: string;
  regions: Array<{
    bar: number;
    type: 'memory' | 'io';
    address: number;
    size: number;
    prefetch?: boolean;
    mem_type_64?: boolean;
  }>;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** A QMP connection to one QEMU, past the capabilities handshake. */
export class QmpConnection {
  private buffered = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedError: Error | undefined;
  private greetingWaiter: ((greeting: unknown) => void) | undefined;
  private readonly eventWaiters = new Set<{ name: string; resolve: (e: QmpEvent) => void }>();
  /** Every event received, oldest first. */
  readonly events: QmpEvent[] = [];
  /** What QEMU greeted with (its version and capabilities). */
  greeting: unknown;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('QMP: connection closed')));
  }

  /**
   * Connects to QEMU's QMP socket, retrying while QEMU has not created it
   * yet, reads the greeting and negotiates capabilities.
   */
  static async open(path: string, timeoutMs = 10000): Promise<QmpConnection> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => {
            s.removeListener('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        const qmp = new QmpConnection(socket);
        await qmp.handshake(Math.max(deadline - Date.now(), 1000));
        return qmp;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) {
          throw err;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /** Runs one command and resolves with its `return` value; rejects with a {@link QmpError}. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError !== undefined) {
      return Promise.reject(this.closedError);
    }
    const id = `q${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /**
   * Resolves with the first event named `name` received after `since` (an
   * index into {@link events}: take `events.length` before the command that
   * causes it), waiting for it up to `timeoutMs`.
   */
  waitEvent(name: string, timeoutMs = 5000, since = this.events.length): Promise<QmpEvent> {
    const earlier = this.events.slice(since).find((e) => e.event === name);
    if (earlier !== undefined) {
      return Promise.resolve(earlier);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        name,
        resolve: (e: QmpEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.eventWaiters.delete(waiter);
        reject(new Error(`QMP: no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.eventWaiters.add(waiter);
    });
  }

  /** `query-pci`, flattened to the functions of every bus. */
  async queryPci(): Promise<QmpPciDevice[]> {
    const buses = await this.execute<Array<{ bus: number; devices: QmpPciDevice[] }>>('query-pci');
    return buses.flatMap((b) => b.devices);
  }

  /** `system_reset`: resolves once QEMU has reported the RESET event. */
  async systemReset(timeoutMs = 5000): Promise<void> {
    const since = this.events.length;
    await this.execute('system_reset');
    await this.waitEvent('RESET', timeoutMs, since);
  }

  /** `quit`: QEMU answers, then exits; the caller waits for the process. */
  async quit(): Promise<void> {
    await this.execute('quit');
  }

  /** Closes the connection; commands still waiting are rejected. */
  close(): void {
    this.fail(new Error('QMP: closed'));
    this.socket.destroy();
  }

  private async handshake(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      this.greeting = await new Promise<unknown>((resolve, reject) => {
        this.greetingWaiter = resolve;
        timer = setTimeout(() => reject(new Error(`QMP: no greeting within ${timeoutMs} ms`)), timeoutMs);
      });
    } catch (err) {
      this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    await this.execute('qmp_capabilities');
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line !== '') {
        this.onMessage(JSON.parse(line) as Record<string, unknown>);
      }
    }
  }

  private onMessage(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greetingWaiter?.(msg.QMP);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      const event = msg as unknown as QmpEvent;
      this.events.push(event);
      for (const waiter of [...this.eventWaiters]) {
        if (waiter.name === event.event) {
          this.eventWaiters.delete(waiter);
          waiter.resolve(event);
        }
      }
      return;
    }
    const id = String(msg.id);
    const pending = this.pending.get(id);
    if (pending === undefined) {
      return;
    }
    this.pending.delete(id);
    if ('error' in msg) {
      const e = msg.error as { class: string; desc: string };
      pending.reject(new QmpError(pending.command, e.class, e.desc));
    } else {
      pending.resolve(msg.return);
    }
  }

  private fail(err: Error): void {
    if (this.closedError === undefined) {
      this.closedError = err;
    }
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error(`${err.message} (while waiting for ${p.command})`));
    }
  }
}
