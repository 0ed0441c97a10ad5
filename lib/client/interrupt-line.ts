/**
 * The client's end of one interrupt vector: an eventfd the server signals.
 *
 * @packageDocumentation
 */
import type { EventInterruptKind, InterruptKind } from '../constants';
import { errorFromCode, TimeoutError } from '../errors';
import { os, type FdWatcher } from '../native';

interface Waiter {
  readonly resolve: (count: number) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout | undefined;
}

/**
 * One interrupt vector as the client sees it: an eventfd installed with
 * SET_IRQS. {@link InterruptLine.wait} resolves when the server signals it.
 * The line keeps the event loop alive only while someone waits.
 */
export class InterruptLine {
  /** The eventfd (non-blocking); the line owns it. */
  readonly fd: number;
  private readonly watcher: FdWatcher;
  private readonly waiters: Waiter[] = [];
  private closed = false;

  /**
   * @param kind - interrupt type
   * @param vector - vector number within the type
   */
  constructor(
    readonly kind: InterruptKind | EventInterruptKind,
    readonly vector: number,
  ) {
    this.fd = os.eventfd(0, true);
    this.watcher = new os.FdWatcher(this.fd, (readable) => {
      if (readable) {
        this.deliver();
      }
    });
  }

  /**
   * How many times the interrupt fired since the last `take` or `wait`,
   * without waiting: 0 when it did not.
   */
  take(): number {
    if (this.closed) {
      return 0;
    }
    // An eventfd counts up to 2^64 - 2; a test never gets near 2^53.
    return Number(os.eventfdRead(this.fd) ?? 0n);
  }

  /**
   * Resolves with the number of times the interrupt fired (at least 1) as
   * soon as it has fired, at once if it already has.
   *
   * @param timeoutMs - reject with a {@link TimeoutError} after this long (0: wait forever; default 5000)
   */
  wait(timeoutMs = 5000): Promise<number> {
    if (this.closed) {
      return Promise.reject(errorFromCode('EBADF', `wait for ${this.kind} ${this.vector}`, 'the line is closed'));
    }
    const count = this.take();
    if (count > 0) {
      return Promise.resolve(count);
    }
    return new Promise<number>((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.removeWaiter(waiter);
              reject(new TimeoutError(`wait for ${this.kind} vector ${this.vector}`, timeoutMs));
            }, timeoutMs)
          : undefined;
      const waiter: Waiter = { resolve, reject, timer };
      this.waiters.push(waiter);
      if (this.waiters.length === 1) {
        this.watcher.start(true, false);
      }
    });
  }

  /** Closes the eventfd; waiters are rejected. Idempotent. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.watcher.close();
    os.close(this.fd);
    for (const waiter of this.waiters.splice(0)) {
      if (waiter.timer !== undefined) {
        clearTimeout(waiter.timer);
      }
      waiter.reject(errorFromCode('EBADF', `wait for ${this.kind} ${this.vector}`, 'the line was closed'));
    }
  }

  private deliver(): void {
    const count = this.take();
    if (count === 0) {
      return;
    }
    // Every waiter learns of the same firing.
    for (const waiter of this.waiters.splice(0)) {
      if (waiter.timer !== undefined) {
        clearTimeout(waiter.timer);
      }
      waiter.resolve(count);
    }
    this.watcher.stop();
  }

  private removeWaiter(waiter: Waiter): void {
    const i = this.waiters.indexOf(waiter);
    if (i >= 0) {
      this.waiters.splice(i, 1);
    }
    if (this.waiters.length === 0 && !this.closed) {
      this.watcher.stop();
    }
  }
}
