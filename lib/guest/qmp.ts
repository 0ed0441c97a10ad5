/**
 * The little of QMP (QEMU's JSON control protocol) the guest harness needs:
 * the capabilities handshake, commands with their replies, and events.
 */
import { connect, Socket } from 'node:net';

/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpConnection {
  private buffered = '';
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly events: QmpEvent[] = [];
  private readonly eventWaiters: Array<{ name: string; resolve: (e: QmpEvent) => void }> = [];
  private greeted: () => void = () => undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('close', () => {
      for (const { reject } of this.pending.values()) {
        reject(new Error('the QMP connection closed'));
      }
      this.pending.clear();
    });
  }

  /** Connects to QEMU's QMP socket and completes the handshake. */
  static async open(path: string): Promise<QmpConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path, () => resolve(s));
      s.once('error', reject);
    });
    const qmp = new QmpConnection(socket);
    await new Promise<void>((resolve) => {
      qmp.greeted = resolve;
    });
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  /** Runs one command; resolves with its `return` value, rejects with its error. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`);
    });
  }

  /** Resolves with the first event named `name` that arrived or arrives after this connection opened, taking it. */
  nextEvent(name: string): Promise<QmpEvent> {
    const at = this.events.findIndex((e) => e.event === name);
    if (at >= 0) {
      return Promise.resolve(this.events.splice(at, 1)[0]);
    }
    return new Promise((resolve) => this.eventWaiters.push({ name, resolve }));
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line !== '') {
        this.dispatch(JSON.parse(line) as Record<string, unknown>);
      }
    }
  }

  private dispatch(message: Record<string, unknown>): void {
    if ('QMP' in message) {
      this.greeted();
    } else if ('event' in message) {
      const event = message as unknown as QmpEvent;
      const waiter = this.eventWaiters.findIndex((w) => w.name === event.event);
      if (waiter >= 0) {
        this.eventWaiters.splice(waiter, 1)[0].resolve(event);
      } else {
        this.events.push(event);
      }
    } else if (typeof message.id === 'number') {
      const entry = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (entry !== undefined && 'error' in message) {
        const error = message.error as { class?: string; desc?: string };
        entry.reject(new Error(`QMP: ${error.class ?? 'error'}: ${error.desc ?? ''}`));
      } else {
        entry?.resolve(message.return);
      }
    }
  }
}
