/**
 * One vfio-user connection seen from the client: framing messages on a
 * non-blocking UNIX stream socket with file descriptors as SCM_RIGHTS data,
 * matching replies to requests by message ID, request timeouts, and
 * commands that the server sends to the client.
 *
 * @packageDocumentation
 */
import { errorFromCode, ProtocolError, TimeoutError, VfioUserError } from '../errors';
import { os, type FdWatcher } from '../native';
import {
  commandName,
  decodeHeader,
  encodeHeader,
  HEADER_SIZE,
  HeaderFlag,
  type Message,
} from './protocol';

/** Largest message accepted from the server: 1 MiB of data plus headers, with room to spare. */
const MAX_INCOMING_MESSAGE = (1 << 20) + 4096;
const INITIAL_RECEIVE_BUFFER = 64 * 1024;

interface Outgoing {
  readonly bytes: Buffer;
  readonly fds: number[];
  sent: number;
}

interface Pending {
  readonly command: number;
  readonly resolve: (message: Message) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

/** Options of one request. */
export interface RequestOptions {
  /** File descriptors to pass with the message (the caller keeps ownership). */
  readonly fds?: readonly number[];
  /** Milliseconds to wait for the reply; 0 waits forever. */
  readonly timeout?: number;
  /** Set the No_reply flag and resolve once the message is queued. */
  readonly noReply?: boolean;
}

/** Called for commands the server sends; returns the reply payload or throws a VfioUserError. */
export type CommandHandler = (message: Message) => Buffer;

/**
 * A framed, multiplexed vfio-user connection. It keeps the event loop alive
 * only while a request is waiting for its reply.
 */
export class Channel {
  private readonly watcher: FdWatcher;
  private receiveBuffer = Buffer.alloc(INITIAL_RECEIVE_BUFFER);
  private received = 0;
  private receivedFds: number[] = [];
  private readonly queue: Outgoing[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedWith: Error | undefined;
  private watchingWritable = false;

  /**
   * @param fd - the connected socket, non-blocking; the channel owns it
   * @param defaultTimeout - milliseconds to wait for a reply unless a request says otherwise
   * @param onCommand - serves commands from the server
   * @param onClose - told once when the connection ends, with why
   */
  constructor(
    private readonly fd: number,
    private readonly defaultTimeout: number,
    private readonly onCommand: CommandHandler,
    private readonly onClose: (reason: Error) => void,
  ) {
    this.watcher = new os.FdWatcher(fd, (readable, writable, error) => this.onEvent(readable, writable, error));
    this.watcher.start(true, false);
    this.watcher.unref();
  }

  /** True until the connection ends. */
  get open(): boolean {
    return this.closedWith === undefined;
  }

  /**
   * Sends a command and resolves with its reply.
   * Rejects with a {@link VfioUserError} carrying the server's errno for an
   * error reply, a {@link TimeoutError}, or ENOTCONN once the connection ends.
   */
  request(command: number, payload: Uint8Array, options: RequestOptions = {}): Promise<Message> {
    if (this.closedWith !== undefined) {
      return Promise.reject(errorFromCode('ENOTCONN', commandName(command), 'the connection is closed'));
    }
    const id = this.allocateId();
    const noReply = options.noReply === true;
    const header = encodeHeader(id, command, payload.length, HeaderFlag.TYPE_COMMAND | (noReply ? HeaderFlag.NO_REPLY : 0));
    const sent = this.send(Buffer.concat([header, payload]), [...(options.fds ?? [])]);
    if (noReply) {
      return sent ? Promise.resolve({ header: decodeHeader(header), payload: Buffer.alloc(0), fds: [] }) : this.closedPromise(command);
    }
    if (!sent) {
      return this.closedPromise(command);
    }
    return new Promise<Message>((resolve, reject) => {
      const timeout = options.timeout ?? this.defaultTimeout;
      const timer =
        timeout > 0
          ? setTimeout(() => {
              this.finish(id);
              reject(new TimeoutError(commandName(command), timeout));
            }, timeout)
          : undefined;
      this.pending.set(id, { command, resolve, reject, timer });
      this.updateRef();
    });
  }

  /** Ends the connection: pending requests fail with ENOTCONN. Idempotent. */
  close(reason: Error = errorFromCode('ENOTCONN', 'close', 'the client closed the connection')): void {
    this.shutdown(reason);
  }

  private closedPromise(command: number): Promise<Message> {
    return Promise.reject(errorFromCode('ENOTCONN', commandName(command), this.closedWith?.message));
  }

  private allocateId(): number {
    // IDs are 16 bits; skip any still waiting for a reply.
    for (;;) {
      const id = this.nextId;
      this.nextId = (this.nextId + 1) & 0xffff;
      if (!this.pending.has(id)) {
        return id;
      }
    }
  }

  private finish(id: number): Pending | undefined {
    const entry = this.pending.get(id);
    if (entry !== undefined) {
      this.pending.delete(id);
      if (entry.timer !== undefined) {
        clearTimeout(entry.timer);
      }
      this.updateRef();
    }
    return entry;
  }

  /** Keeps the process alive only while there is something to send or wait for. */
  private updateRef(): void {
    if (this.closedWith !== undefined) {
      return;
    }
    if (this.pending.size > 0 || this.queue.length > 0) {
      this.watcher.ref();
    } else {
      this.watcher.unref();
    }
  }

  /** Queues bytes and writes what the socket takes; false when the connection is closed. */
  private send(bytes: Buffer, fds: number[]): boolean {
    if (this.closedWith !== undefined) {
      return false;
    }
    this.queue.push({ bytes, fds, sent: 0 });
    this.flush();
    return this.closedWith === undefined;
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      let n: number;
      try {
        n = os.sendmsg(this.fd, [head.bytes.subarray(head.sent)], head.sent === 0 ? head.fds : []);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'EAGAIN') {
          break;
        }
        this.shutdown(asError(err, 'sendmsg'));
        return;
      }
      head.sent += n;
      if (head.sent < head.bytes.length) {
        break;
      }
      this.queue.shift();
    }
    const wantWritable = this.queue.length > 0;
    if (wantWritable !== this.watchingWritable) {
      this.watchingWritable = wantWritable;
      this.watcher.start(true, wantWritable);
    }
    this.updateRef();
  }

  private onEvent(readable: boolean, writable: boolean, error: number): void {
    if (this.closedWith !== undefined) {
      return;
    }
    if (writable) {
      this.flush();
    }
    if (readable || error !== 0) {
      this.receive();
    }
  }

  private receive(): void {
    while (this.closedWith === undefined) {
      if (this.received === this.receiveBuffer.length) {
        this.grow(this.receiveBuffer.length * 2);
      }
      let result: { bytes: number; fds: number[] } | null;
      try {
        result = os.recvmsg(this.fd, this.receiveBuffer, this.received);
      } catch (err) {
        this.shutdown(asError(err, 'recvmsg'));
        return;
      }
      if (result === null) {
        return;
      }
      this.receivedFds.push(...result.fds);
      if (result.bytes === 0) {
        this.shutdown(errorFromCode('ECONNRESET', 'recvmsg', 'the server closed the connection'));
        return;
      }
      this.received += result.bytes;
      this.parse();
    }
  }

  private grow(size: number): void {
    const bigger = Buffer.alloc(size);
    this.receiveBuffer.copy(bigger, 0, 0, this.received);
    this.receiveBuffer = bigger;
  }

  private parse(): void {
    while (this.closedWith === undefined && this.received >= HEADER_SIZE) {
      const header = decodeHeader(this.receiveBuffer);
      if (header.size < HEADER_SIZE || header.size > MAX_INCOMING_MESSAGE) {
        this.shutdown(new ProtocolError(commandName(header.command), `message size ${header.size} is impossible`));
        return;
      }
      if (this.received < header.size) {
        if (this.receiveBuffer.length < header.size) {
          this.grow(header.size);
        }
        return;
      }
      const payload = Buffer.from(this.receiveBuffer.subarray(HEADER_SIZE, header.size));
      this.receiveBuffer.copy(this.receiveBuffer, 0, header.size, this.received);
      this.received -= header.size;
      // Descriptors arrive with the first bytes of the message they belong to.
      const fds = this.receivedFds;
      this.receivedFds = [];
      this.dispatch({ header, payload, fds });
    }
  }

  private dispatch(message: Message): void {
    const { header } = message;
    if ((header.flags & HeaderFlag.TYPE_MASK) === HeaderFlag.TYPE_REPLY) {
      const entry = this.finish(header.id);
      if (entry === undefined) {
        closeAll(message.fds); // a reply to a request that timed out
        return;
      }
      if (header.command !== entry.command) {
        closeAll(message.fds);
        entry.reject(new ProtocolError(commandName(entry.command), `reply is for ${commandName(header.command)}`));
      } else if ((header.flags & HeaderFlag.ERROR) !== 0) {
        closeAll(message.fds);
        entry.reject(
          new VfioUserError(header.error === 0 ? 5 : header.error, commandName(header.command), header.error === 0 ? 'error reply without an errno' : undefined),
        );
      } else {
        entry.resolve(message);
      }
      return;
    }
    this.serveCommand(message);
  }

  private serveCommand(message: Message): void {
    const { header } = message;
    let reply: Buffer;
    let errno = 0;
    try {
      reply = this.onCommand(message);
    } catch (err) {
      reply = Buffer.alloc(0);
      errno = err instanceof VfioUserError ? err.errno : 5;
    } finally {
      closeAll(message.fds);
    }
    if ((header.flags & HeaderFlag.NO_REPLY) !== 0) {
      return;
    }
    const flags = HeaderFlag.TYPE_REPLY | (errno !== 0 ? HeaderFlag.ERROR : 0);
    this.send(Buffer.concat([encodeHeader(header.id, header.command, reply.length, flags, errno), reply]), []);
  }

  private shutdown(reason: Error): void {
    if (this.closedWith !== undefined) {
      return;
    }
    this.closedWith = reason;
    this.watcher.close();
    os.close(this.fd);
    closeAll(this.receivedFds);
    this.receivedFds = [];
    this.queue.length = 0;
    for (const [id, entry] of [...this.pending]) {
      this.finish(id);
      entry.reject(errorFromCode('ENOTCONN', commandName(entry.command), reason.message));
    }
    this.onClose(reason);
  }
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    os.close(fd);
  }
}

function asError(err: unknown, syscall: string): Error {
  const { errno } = err as { errno?: unknown };
  if (typeof errno === 'number' && errno > 0) {
    return new VfioUserError(errno, syscall);
  }
  return err instanceof Error ? err : new Error(String(err));
}
