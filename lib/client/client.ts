/**
 * `VfioUserClient`: the client side of vfio-user (what QEMU is), written from
 * the protocol specification, to test devices without a VM. Its requests
 * come in layers, one concern each: regions ({@link RegionClient}),
 * interrupts ({@link InterruptClient}), DMA ({@link DmaClient}) and
 * migration ({@link MigrationClient}); this file connects and negotiates.
 *
 * @packageDocumentation
 */
import { errorFromCode, OptionsError, ProtocolError, TimeoutError, VfioUserError } from '../errors';
import { os } from '../native';
import { Channel } from './channel';
import { MigrationClient } from './migration-client';
import { Command, decodeVersion, DEFAULT_CAPABILITIES, encodeVersion, type ServerCapabilities } from './protocol';

/** Options of {@link VfioUserClient.connect}. */
export interface VfioUserClientOptions {
  /** Milliseconds to wait for each reply (default 5000; 0 waits forever). */
  readonly timeout?: number;
  /** Protocol minor version to propose (default 2). */
  readonly minor?: number;
  /** Most file descriptors we take in one message (default 8). */
  readonly maxMsgFds?: number;
  /** Most bytes per data message we take (default 1 MiB). */
  readonly maxDataXferSize?: number;
  /**
   * Offer a twin socket (default false): if the server grants it, its
   * DMA_READ / DMA_WRITE come on a socket of their own.
   */
  readonly twinSocket?: boolean;
}

/** Events of a {@link VfioUserClient}. */
export interface VfioUserClientEvents {
  /** The connection ended, with why (the server went away, or {@link VfioUserClient.close}). */
  close: [reason: Error];
}

const DEFAULT_TIMEOUT = 5000;

/**
 * The twin socket a VERSION reply grants, if any; the reply's other fds are
 * closed. A grant we did not ask for, or one whose fd is missing, is a
 * protocol error (the spec asks the client to give up then).
 */
function takeTwinSocket(reply: { payload: Buffer; fds: number[] }, asked: boolean): number | undefined {
  let index: number | undefined;
  try {
    index = decodeVersion(reply.payload).capabilities.twinSocketFdIndex;
  } catch {
    index = undefined; // the caller reports the malformed reply
  }
  const fd = index !== undefined ? reply.fds[index] : undefined;
  reply.fds.forEach((other) => other !== fd && os.close(other));
  if (index !== undefined && (fd === undefined || !asked)) {
    if (fd !== undefined) {
      os.close(fd);
    }
    throw new ProtocolError('VERSION', asked ? `twin socket fd_index ${index} names no fd of the reply` : 'a twin socket we did not ask for');
  }
  return fd;
}

/**
 * A failed negotiation, worded for the likeliest cause: a server serves one
 * client at a time, and one that is busy refuses or ignores the next.
 */
function negotiationError(err: unknown, socket: string): unknown {
  if (!(err instanceof VfioUserError)) {
    return err;
  }
  if (err instanceof TimeoutError) {
    const busy = new TimeoutError('VERSION', err.timeoutMs);
    busy.message += `: the server at ${socket} did not negotiate; it serves one client at a time, is another attached?`;
    return busy;
  }
  if (err.code === 'EBUSY') {
    return errorFromCode('EBUSY', 'connect', `${socket}: the device is busy with another client`);
  }
  if (err.code === 'ENOTCONN' || err.code === 'ECONNRESET') {
    return errorFromCode(err.code, 'connect', `${socket}: the server closed the connection before negotiating (busy with another client?)`);
  }
  return err;
}

/**
 * A vfio-user client: connects to a device's socket, negotiates, and then
 * reads and writes its regions and config space, maps guest memory for DMA,
 * receives its interrupts, and resets it. Every method sends one message
 * (SET_IRQS with more eventfds than the server takes at once excepted).
 *
 * @example
 * ```ts
 * const client = await VfioUserClient.connect('/run/timer.sock');
 * await client.write32(0, 0x0, 1);
 * const [irq] = await client.enableInterrupts('msix');
 * await irq.wait();
 * await client.close();
 * ```
 */
export class VfioUserClient extends MigrationClient {
  /** The server's commands, when it granted a twin socket. */
  private twin: Channel | undefined;

  private constructor(channel: Channel, version: { major: number; minor: number }, capabilities: ServerCapabilities, maxDataXferSize: number) {
    super(channel, version, capabilities, maxDataXferSize);
  }

  /**
   * Connects to the socket and negotiates the version and capabilities.
   *
   * @throws {@link VfioUserError} ENOENT / ECONNREFUSED when nothing listens, or the server's errno
   * @throws {@link ProtocolError} when the server's VERSION reply is malformed or incompatible
   * @throws {@link VfioUserError} EBUSY when the server says it serves another client; a
   *   {@link TimeoutError} whose message says so when it leaves the VERSION unanswered
   */
  static async connect(socket: string, options: VfioUserClientOptions = {}): Promise<VfioUserClient> {
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new OptionsError('timeout', `must be a non-negative number of milliseconds, not ${timeout}`);
    }
    const minor = options.minor ?? 2;
    const maxDataXferSize = options.maxDataXferSize ?? DEFAULT_CAPABILITIES.maxDataXferSize;
    if (!Number.isSafeInteger(maxDataXferSize) || maxDataXferSize < 1) {
      throw new OptionsError('maxDataXferSize', `must be a positive integer, not ${maxDataXferSize}`);
    }
    let fd: number;
    try {
      fd = os.connect(socket);
    } catch (err) {
      const { errno } = err as { errno?: unknown };
      throw typeof errno === 'number' ? new VfioUserError(errno, 'connect', socket) : err;
    }
    let client: VfioUserClient | undefined;
    const channel = new Channel(
      fd,
      timeout,
      (message) => {
        if (client === undefined) {
          throw errorFromCode('EINVAL', 'command before negotiation');
        }
        return client.serveCommand(message);
      },
      (reason) => client?.onChannelClosed(reason),
    );
    try {
      const reply = await channel.request(
        Command.VERSION,
        encodeVersion(0, minor, {
          max_msg_fds: options.maxMsgFds ?? 8,
          max_data_xfer_size: maxDataXferSize,
          ...(options.twinSocket === true ? { twin_socket: { supported: true } } : {}),
        }),
      );
      const twinFd = takeTwinSocket(reply, options.twinSocket === true);
      let decoded: ReturnType<typeof decodeVersion>;
      try {
        decoded = decodeVersion(reply.payload);
        if (decoded.major !== 0 || decoded.minor > minor) {
          throw new ProtocolError('VERSION', `server answered version ${decoded.major}.${decoded.minor} to our 0.${minor}`);
        }
      } catch (err) {
        if (twinFd !== undefined) {
          os.close(twinFd);
        }
        throw err;
      }
      const created = new VfioUserClient(channel, { major: decoded.major, minor: decoded.minor }, decoded.capabilities, maxDataXferSize);
      client = created;
      if (twinFd !== undefined) {
        created.twin = new Channel(
          twinFd,
          timeout,
          (message) => created.serveCommand(message),
          (reason) => channel.close(reason),
        );
      }
      return client;
    } catch (err) {
      channel.close();
      throw negotiationError(err, socket);
    }
  }

  /** DEVICE_RESET. */
  async reset(): Promise<void> {
    await this.request(Command.DEVICE_RESET);
    this.knownState = undefined;
  }

  /**
   * Disconnects, closes the interrupt lines and frees the guest memory. The
   * device keeps its state for the next client. Idempotent. Resolves once
   * the event loop has released the socket's and the eventfds' poll handles.
   */
  async close(): Promise<void> {
    this.channel.close();
    this.twin?.close();
    this.releaseResources();
    await new Promise((resolve) => setImmediate(resolve));
  }

  private onChannelClosed(reason: Error): void {
    this.twin?.close(reason);
    this.releaseResources();
    this.emit('close', reason);
  }
}
