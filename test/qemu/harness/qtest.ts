/**
 * A client for QEMU's qtest protocol: one command per line, one reply per
 * command in order ("OK [value]", or "FAIL"/"ERR" with a message), plus
 * unsolicited "IRQ raise N" / "IRQ lower N" lines once interrupts are
 * intercepted. Those may arrive between any two replies, so every line is
 * classified as it comes and replies are matched to commands in order.
 *
 * Commands may be pipelined: each call sends at once and its promise settles
 * with its own reply.
 */
import { Socket } from 'node:net';

export class QtestError extends Error {
  constructor(
    readonly command: string,
    readonly reply: string,
  ) {
    super(`qtest: "${command}" failed: ${reply}`);
    this.name = 'QtestError';
  }
}

export interface IrqEvent {
  line: number;
  level: boolean;
  /** Milliseconds since the connection started. */
  at: number;
}

interface Pending {
  command: string;
  resolve: (value: string) => void;
  reject: (err: Error) => void;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

export class QtestConnection {
  private buffered = '';
  private readonly pending: Pending[] = [];
  private closedError: Error | undefined;
  private readonly started = Date.now();
  private readonly irqLevels = new Map<number, boolean>();
  private readonly irqWaiters = new Set<{ test: (e: IrqEvent) => boolean; resolve: (e: IrqEvent) => void }>();
  /** Every IRQ line seen, oldest first. */
  readonly irqEvents: IrqEvent[] = [];

  constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('qtest: connection closed')));
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    const irq = /^IRQ (raise|lower) (\d+)$/.exec(line);
    if (irq !== null) {
      const event: IrqEvent = { line: Number(irq[2]), level: irq[1] === 'raise', at: Date.now() - this.started };
      this.irqEvents.push(event);
      this.irqLevels.set(event.line, event.level);
      for (const waiter of [...this.irqWaiters]) {
        if (waiter.test(event)) {
          this.irqWaiters.delete(waiter);
          waiter.resolve(event);
        }
      }
      return;
    }
    const next = this.pending.shift();
    if (next === undefined) {
      // A reply nobody asked for means we lost track: nothing later can be trusted.
      this.fail(new Error(`qtest: unexpected line "${line}"`));
      return;
    }
    if (line === 'OK' || line.startsWith('OK ')) {
      next.resolve(line.slice(3));
    } else {
      next.reject(new QtestError(next.command, line));
    }
  }

  private fail(err: Error): void {
    if (this.closedError === undefined) {
      this.closedError = err;
    }
    for (const p of this.pending.splice(0)) {
      p.reject(new Error(`${err.message} (while waiting for "${p.command}")`));
    }
  }

  /** Sends one raw command line; resolves with what follows "OK ". */
  command(line: string): Promise<string> {
    if (this.closedError !== undefined) {
      return Promise.reject(this.closedError);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ command: line, resolve, reject });
      this.socket.write(`${line}\n`);
    });
  }

  /** Closes the connection; pending commands are rejected. */
  close(): void {
    this.fail(new Error('qtest: closed by the test'));
    this.socket.destroy();
  }

  // Port I/O.
  async outb(port: number, value: number): Promise<void> {
    await this.command(`outb ${hex(port)} ${hex(value)}`);
  }
  async outw(port: number, value: number): Promise<void> {
    await this.command(`outw ${hex(port)} ${hex(value)}`);
  }
  async outl(port: number, value: number): Promise<void> {
    await this.command(`outl ${hex(port)} ${hex(value >>> 0)}`);
  }
  async inb(port: number): Promise<number> {
    return Number(await this.command(`inb ${hex(port)}`));
  }
  async inw(port: number): Promise<number> {
    return Number(await this.command(`inw ${hex(port)}`));
  }
  async inl(port: number): Promise<number> {
    return Number(await this.command(`inl ${hex(port)}`));
  }

  // Guest physical memory (RAM or MMIO), little-endian values.
  async writeb(addr: number | bigint, value: number): Promise<void> {
    await this.command(`writeb ${hex(addr)} ${hex(value)}`);
  }
  async writew(addr: number | bigint, value: number): Promise<void> {
    await this.command(`writew ${hex(addr)} ${hex(value)}`);
  }
  async writel(addr: number | bigint, value: number): Promise<void> {
    await this.command(`writel ${hex(addr)} ${hex(value >>> 0)}`);
  }
  async writeq(addr: number | bigint, value: bigint): Promise<void> {
    await this.command(`writeq ${hex(addr)} ${hex(BigInt.asUintN(64, value))}`);
  }
  async readb(addr: number | bigint): Promise<number> {
    return Number(await this.command(`readb ${hex(addr)}`));
  }
  async readw(addr: number | bigint): Promise<number> {
    return Number(await this.command(`readw ${hex(addr)}`));
  }
  async readl(addr: number | bigint): Promise<number> {
    return Number(await this.command(`readl ${hex(addr)}`));
  }
  async readq(addr: number | bigint): Promise<bigint> {
    return BigInt(await this.command(`readq ${hex(addr)}`));
  }

  /** Reads `size` bytes of guest memory in one command. */
  async read(addr: number | bigint, size: number): Promise<Buffer> {
    const reply = await this.command(`read ${hex(addr)} ${hex(size)}`);
    if (!reply.startsWith('0x') || reply.length !== 2 + size * 2) {
      throw new QtestError(`read ${hex(addr)} ${hex(size)}`, `malformed reply "${reply}"`);
    }
    return Buffer.from(reply.slice(2), 'hex');
  }

  /** Writes a buffer to guest memory in one command. */
  async write(addr: number | bigint, data: Uint8Array): Promise<void> {
    await this.command(`write ${hex(addr)} ${hex(data.length)} 0x${Buffer.from(data).toString('hex')}`);
  }

  /** Fills guest memory with one byte value. */
  async memset(addr: number | bigint, size: number, value: number): Promise<void> {
    await this.command(`memset ${hex(addr)} ${hex(size)} ${hex(value)}`);
  }

  /**
   * Routes a device's interrupt inputs to this connection, which then
   * receives an "IRQ raise/lower N" line per change. On q35 the PCI INTx
   * lines end at the I/O APIC: `irqInterceptIn('ioapic')`.
   */
  async irqInterceptIn(qomPath: string): Promise<void> {
    await this.command(`irq_intercept_in ${qomPath}`);
  }

  /** Current level of an intercepted line (false if never raised). */
  irqLevel(line: number): boolean {
    return this.irqLevels.get(line) ?? false;
  }

  /** A position in `irqEvents`, to wait for events after it (see `waitIrq`). */
  irqMark(): number {
    return this.irqEvents.length;
  }

  /**
   * Resolves with the first IRQ event after `since` (default: from now on)
   * that matches, or rejects after `timeoutMs`; with `line` undefined any
   * line matches. An interrupt can arrive before the reply to the command
   * that caused it, so take a mark before that command and pass it here.
   */
  waitIrq(level: boolean, line?: number, timeoutMs = 2000, since = this.irqEvents.length): Promise<IrqEvent> {
    const test = (e: IrqEvent): boolean => e.level === level && (line === undefined || e.line === line);
    const earlier = this.irqEvents.slice(since).find(test);
    if (earlier !== undefined) {
      return Promise.resolve(earlier);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        resolve: (e: IrqEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.irqWaiters.delete(waiter);
        const what = `IRQ ${level ? 'raise' : 'lower'}${line === undefined ? '' : ` ${line}`}`;
        reject(new Error(`qtest: no "${what}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.irqWaiters.add(waiter);
    });
  }
}
