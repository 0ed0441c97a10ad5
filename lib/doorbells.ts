/**
 * Serving a device's doorbells: one eventfd each, offered to the client
 * through the library (GET_REGION_IO_FDS) and watched on the event loop,
 * and the same doorbells rung by REGION_WRITE for a client that does not
 * use ioeventfds (QEMU 11). Either way the device gets
 * {@link PciDevice.onDoorbell} with a count of kicks.
 *
 * @packageDocumentation
 */
import type { PciDevice } from './device';
import type { DevicePlan } from './device-plan';
import { ioeventfdFlags, type Doorbell } from './doorbell-plan';
import { refuseThenable } from './handler-results';
import { os, type DeviceContext, type FdWatcher } from './native';
import type { RegionHandler } from './region';

/** Tells the device its doorbell was kicked `kicks` times. */
export function ringDoorbell(device: PciDevice, doorbell: Doorbell, kicks: number): void {
  refuseThenable(device.onDoorbell(doorbell, kicks), 'onDoorbell');
}

/** Whether a write of `data` kicks `doorbell` (at its offset already): KVM's rule for an ioeventfd. */
function isKick(doorbell: Doorbell, data: Buffer): boolean {
  if (data.length !== doorbell.size) {
    return false;
  }
  if (doorbell.datamatch === undefined) {
    return true;
  }
  const value = data.length === 8 ? data.readBigUInt64LE(0) : BigInt(data.readUIntLE(0, data.length));
  return value === doorbell.datamatch;
}

/**
 * A BAR's handler with its doorbells in front: a write that would have
 * kicked a doorbell's eventfd rings the doorbell once instead of reaching
 * `handler`; every other access goes to `handler` (or, without one, reads
 * zeros and is dropped, as a BAR without a handler does).
 */
export function withDoorbells(handler: RegionHandler | undefined, doorbells: readonly Doorbell[], ring: (doorbell: Doorbell) => void): RegionHandler {
  const byOffset = new Map<number, Doorbell[]>();
  for (const doorbell of doorbells) {
    byOffset.set(doorbell.offset, [...(byOffset.get(doorbell.offset) ?? []), doorbell]);
  }
  const front: RegionHandler = {
    read: (offset, data) => handler?.read(offset, data),
    write: (offset, data) => {
      const rung = byOffset.get(offset)?.find((doorbell) => isKick(doorbell, data));
      if (rung !== undefined) {
        ring(rung);
        return;
      }
      handler?.write(offset, data);
    },
  };
  // Only what the handler has: migration and reset look for these methods.
  if (handler?.reset !== undefined) {
    front.reset = handler.reset.bind(handler);
  }
  if (handler?.saveState !== undefined) {
    front.saveState = handler.saveState.bind(handler);
  }
  if (handler?.loadState !== undefined) {
    front.loadState = handler.loadState.bind(handler);
  }
  return front;
}

/** What the doorbells' eventfds report to. */
export interface DoorbellHost {
  /** The doorbell was kicked `kicks` times through its eventfd. */
  ring(doorbell: Doorbell, kicks: number): void;
  /** Reading an eventfd failed, or `ring` threw. */
  reportError(err: Error): void;
}

/**
 * The eventfds of a served device's doorbells, registered with the library
 * and watched on the event loop. They stay for the device's whole service:
 * every client that asks gets the same ones.
 */
export class DoorbellEventfds {
  private readonly open: Array<{ readonly fd: number; readonly watcher: FdWatcher }> = [];

  /**
   * Creates and registers an eventfd per doorbell of `plan`.
   *
   * @throws the library's or the system's error; what was made is released
   */
  constructor(context: DeviceContext, plan: DevicePlan, host: DoorbellHost) {
    try {
      for (const doorbell of plan.doorbells) {
        const bar = plan.bars.find((b) => b.index === doorbell.bar);
        if (bar === undefined) {
          throw new Error(`doorbell ${doorbell.name}: the plan has no BAR ${doorbell.bar}`);
        }
        const fd = os.eventfd(0, true);
        let watcher: FdWatcher;
        try {
          context.createIoeventfd(doorbell.bar, fd, doorbell.offset, doorbell.size, ioeventfdFlags(doorbell, bar), doorbell.datamatch ?? 0n);
          watcher = new os.FdWatcher(fd, (readable, _writable, error) => drain(fd, doorbell, host, readable, error));
        } catch (err) {
          os.close(fd);
          throw err;
        }
        this.open.push({ fd, watcher });
        watch(watcher);
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * While the device is stopped for migration, leaves kicks counted in the
   * eventfds (the device must change nothing then); they are delivered
   * when it runs again.
   */
  hold(stopped: boolean): void {
    for (const { watcher } of this.open) {
      if (stopped) {
        watcher.stop();
      } else {
        watch(watcher);
      }
    }
  }

  /** Stops watching and closes the eventfds; call it once the library context is gone. Idempotent. */
  close(): void {
    for (const { fd, watcher } of this.open.splice(0)) {
      watcher.close();
      os.close(fd);
    }
  }
}

function watch(watcher: FdWatcher): void {
  watcher.start(true, false);
  // The server's own socket keeps the process alive, not its doorbells.
  watcher.unref();
}

/** Takes an eventfd's count of kicks (zeroing it) and rings the doorbell with it. */
function drain(fd: number, doorbell: Doorbell, host: DoorbellHost, readable: boolean, error: number): void {
  try {
    if (error !== 0) {
      throw new Error(`doorbell ${doorbell.name}: watching its eventfd failed (errno ${error})`);
    }
    if (!readable) {
      return;
    }
    const count = os.eventfdRead(fd);
    if (count !== null && count > 0n) {
      host.ring(doorbell, Number(count));
    }
  } catch (err) {
    host.reportError(err instanceof Error ? err : new Error(String(err)));
  }
}
