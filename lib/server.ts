/**
 * `VfioUserServer`: serves one {@link PciDevice} on a UNIX socket through the
 * native addon and the C library.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { markAsUntransferable } from 'node:worker_threads';

import { IrqType, irqIndexOf, Region, RegionFlag, type EventInterruptKind, type InterruptKind, type ResetKind } from './constants';
import type { CapabilityKind } from './description';
import { barMemoryOf, bindDevice, devicePlan, type DeviceBinding, type PciDevice } from './device';
import { deviceMigrationRunner } from './device-migration';
import { dmaBind } from './dma';
import { DoorbellEventfds, ringDoorbell } from './doorbells';
import { MigrationStreamError, OptionsError } from './errors';
import { asVfioUserError } from './library-errors';
import { requireLibraryExtensions } from './library-features';
import { dirtyMarker, VECTOR_MASKED, VECTOR_PENDING, vectorState } from './library-queries';
import { isRunningState, type MigrationRunner, type MigrationState } from './migration';
import { DeviceContext, type DeviceHandlers } from './native';
import { INTERRUPT_KINDS, IO_VIEW_BYTES, LOG_WARNING, nativeCallbacks } from './native-callbacks';
import { forgetOpenServer, trackOpenServer } from './open-servers';
import { RegionTable } from './region-table';

/** Options of a {@link VfioUserServer}. */
export interface VfioUserServerOptions {
  /** Path of the UNIX socket to listen on; a stale socket there is replaced. */
  readonly socket: string;
  /** Most verbose syslog level of the library's messages emitted as `'log'` (0-7, default 3: errors). */
  readonly logLevel?: number;
  /**
   * Milliseconds a BAR handler or reset hook may run before the server warns
   * (`'slow-handler'` and a `'log'` warning); default 1000. QEMU waits at most
   * `x-msg-timeout` (5000 ms by default) for a reply and then drops the device.
   */
  readonly slowHandlerMs?: number;
}

/** Events of a {@link VfioUserServer} and their arguments. */
export interface VfioUserServerEvents {
  /** A client connected and negotiated. */
  connect: [];
  /** The client disconnected (the device keeps its state). */
  disconnect: [];
  /** The device was reset; register maps were restored unless the kind is `'lost-connection'`. */
  reset: [kind: ResetKind];
  /** A BAR handler or hook threw (the client got an error reply), or serving failed. */
  error: [error: Error];
  /** A message of the C library, or a warning of the server itself (slow handlers, DMA faults). */
  log: [level: number, message: string];
  /** A BAR handler or reset hook ran longer than `slowHandlerMs`: `name` says which. */
  'slow-handler': [name: string, milliseconds: number];
  /** The device reported a DMA the guest programmed that failed ({@link DmaSpace.reportFault}). */
  'dma-fault': [error: Error];
  /**
   * The client moved the device to another migration state (one event per
   * step of a longer path: RUNNING to STOP_COPY is two).
   */
  migration: [state: MigrationState, previous: MigrationState];
  /** The server closed. */
  close: [];
}

/** Longest socket path: `sun_path` holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** Well under QEMU's 5000 ms x-msg-timeout, and far above any handler that keeps up. */
const DEFAULT_SLOW_HANDLER_MS = 1000;
const { ENOTCONN } = constants.errno;

/**
 * Serves a device on a UNIX socket: it listens as soon as it is constructed
 * and serves one client at a time, on the Node event loop (no threads). A
 * client that disconnects may come back: the device keeps its state.
 *
 * While open it keeps the process alive; {@link VfioUserServer.close} (or
 * the process exiting) removes the socket.
 *
 * If nothing listens to `'error'`, errors from handlers are reported with
 * `process.emitWarning` instead of being thrown, so the device keeps serving.
 */
export class VfioUserServer extends EventEmitter<VfioUserServerEvents> {
  /** The device served. */
  readonly device: PciDevice;
  /** The socket path. */
  readonly socket: string;
  private readonly context: DeviceContext;
  private readonly regions: RegionTable;
  private readonly migration: MigrationRunner | undefined;
  private doorbells: DoorbellEventfds | undefined;
  private closed = false;
  private readonly slowHandlerMs: number;

  /**
   * Sets the device up in the library and starts listening.
   *
   * @throws {@link OptionsError} for a bad socket path (e.g. longer than 107 bytes)
   * @throws {@link DeviceDescriptionError} when a BAR handler function returns no handler, or a
   *   register map whose registers lie outside its BAR or on the MSI-X table or PBA
   * @throws {@link VfioUserError} when the socket cannot be created (EADDRINUSE, ENOENT, EACCES…)
   * @throws Error when the device is already served by another server
   */
  constructor(device: PciDevice, options: VfioUserServerOptions) {
    super();
    if (options === null || typeof options !== 'object' || typeof options.socket !== 'string' || options.socket === '') {
      throw new OptionsError('socket', 'a socket path is required');
    }
    const { socket } = options;
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new OptionsError('socket', `${Buffer.byteLength(socket)} bytes is longer than the ${MAX_SOCKET_PATH} a UNIX socket path may have`);
    }
    if (socket.includes('\0')) {
      throw new OptionsError('socket', 'a socket path cannot contain NUL');
    }
    const logLevel = options.logLevel ?? 3;
    if (!Number.isInteger(logLevel) || logLevel < 0 || logLevel > 7) {
      throw new OptionsError('logLevel', `must be a syslog level from 0 to 7, not ${String(logLevel)}`);
    }
    this.slowHandlerMs = options.slowHandlerMs ?? DEFAULT_SLOW_HANDLER_MS;
    if (typeof this.slowHandlerMs !== 'number' || !(this.slowHandlerMs > 0)) {
      throw new OptionsError('slowHandlerMs', `must be a positive number of milliseconds, not ${String(this.slowHandlerMs)}`);
    }
    this.device = device;
    this.socket = socket;
    const plan = devicePlan(device);
    if (device.served) {
      throw new Error('the device is already being served');
    }
    this.regions = new RegionTable(device, plan, () => Buffer.from(this.context.configSpace()));

    const ioBytes = new ArrayBuffer(IO_VIEW_BYTES);
    // The addon keeps a pointer to these bytes: a handler must not be able
    // to transfer them away (structuredClone, postMessage), which would free
    // them under it. Untransferable buffers are copied instead.
    markAsUntransferable(ioBytes);
    const ioViews = Array.from({ length: IO_VIEW_BYTES + 1 }, (_, n) => Buffer.from(ioBytes, 0, n));
    try {
      this.context = new DeviceContext(socket, this.makeCallbacks(), ioViews);
      this.context.setSlowAccessMs(this.slowHandlerMs);
    } catch (err) {
      throw asVfioUserError(err, 'listen', socket);
    }
    try {
      const ctx = this.context;
      ctx.setLogLevel(logLevel);
      ctx.pciInit(plan.pciType);
      if (plan.configRegisters.length > 0) {
        // With a callback, the config bytes nobody else owns come to the handler.
        ctx.setupRegion(Region.CONFIG, plan.configSize, RegionFlag.READ | RegionFlag.WRITE);
      }
      ctx.setIds(plan.vendorId, plan.deviceId, plan.subsystemVendorId, plan.subsystemId);
      ctx.setClass(...plan.classCode);
      ctx.setRevision(plan.revision);
      for (const bar of plan.bars) {
        const memory = barMemoryOf(device, bar.index);
        if (bar.mapped !== undefined && memory !== undefined) {
          ctx.setupRegion(bar.index, bar.size, bar.flags, memory.fd, bar.mapped.map((r): [number, number] => [r.offset, r.size]));
        } else {
          ctx.setupRegion(bar.index, bar.size, bar.flags);
        }
      }
      if (plan.expansionRom !== undefined) {
        // Readable only: the client sees a read-only region and QEMU sends no writes.
        ctx.setupRegion(Region.ROM, plan.expansionRom.size, RegionFlag.READ);
      }
      const offsets = new Map<CapabilityKind, number[]>();
      for (const cap of plan.capabilities) {
        const offset = ctx.addCapability(cap.offset, cap.flags, cap.bytes);
        offsets.set(cap.kind, [...(offsets.get(cap.kind) ?? []), offset]);
      }
      ctx.setupIrqs(IrqType.INTX, plan.irqs.intx);
      ctx.setupIrqs(IrqType.MSI, plan.irqs.msi);
      ctx.setupIrqs(IrqType.MSIX, plan.irqs.msix);
      if (plan.dmaMaxMappings > 0) {
        ctx.setupDma(plan.dmaMaxMappings);
      }
      this.doorbells = new DoorbellEventfds(ctx, plan, {
        ring: (doorbell, kicks) => ringDoorbell(device, doorbell, kicks),
        reportError: (err) => this.reportError(err),
      });
      if (plan.migration !== undefined) {
        ctx.setupMigration();
        this.migration = deviceMigrationRunner({
          device,
          regions: this.regions,
          context: () => this.context,
          changed: (state, previous) => {
            this.doorbells?.hold(!isRunningState(state));
            // The step has happened: a listener that throws does not undo it.
            try {
              this.emit('migration', state, previous);
            } catch (err) {
              this.reportError(err instanceof Error ? err : new Error(String(err)));
            }
          },
        });
      }
      ctx.realize();
      const config = Buffer.from(ctx.configSpace());
      const binding: DeviceBinding = {
        trigger: (kind, vector) => this.trigger(kind, vector),
        signalEvent: (kind) => this.signalEvent(kind),
        interruptMode: () => {
          requireLibraryExtensions('interrupt mode');
          return INTERRUPT_KINDS[ctx.interruptMode()];
        },
        vectorMasked: (kind, vector) => (vectorState(ctx, kind, vector) & VECTOR_MASKED) !== 0,
        vectorPending: (kind, vector) => (vectorState(ctx, kind, vector) & VECTOR_PENDING) !== 0,
        configSpace: () => config,
        capabilityOffsets: offsets,
      };
      bindDevice(device, binding);
      device.dma.on('fault', this.reportDmaFault);
      dmaBind(device.dma, {
        transfer: (iova, data, isWrite) => this.transfer(iova, data, isWrite),
        markDirty: dirtyMarker(ctx),
      });
      ctx.start();
    } catch (err) {
      this.context.close();
      this.doorbells?.close();
      bindDevice(device, undefined);
      device.dma.off('fault', this.reportDmaFault);
      dmaBind(device.dma, undefined);
      throw asVfioUserError(err, 'setup');
    }
    trackOpenServer(this);
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return !this.closed && this.context.connected;
  }

  /** The device's migration state (`'running'` when it does not migrate). */
  get migrationState(): MigrationState {
    return this.migration?.state ?? 'running';
  }

  /**
   * How many accesses to the mapped ranges of BAR `index` came as
   * REGION_READ / REGION_WRITE messages since the server started, rather
   * than through the client's mapping: 0 for a client that maps them, as
   * QEMU does. Served from the BAR's memory all the same.
   *
   * @throws RangeError when the BAR is not mapped
   */
  mappedAccessMessages(index: number): number {
    const mapped = this.regions.mappedBars.get(index);
    if (mapped === undefined) {
      throw new RangeError(`BAR ${String(index)} of the device served is not mapped`);
    }
    return mapped.messages;
  }

  /** True until {@link VfioUserServer.close}. */
  get listening(): boolean {
    return !this.closed;
  }

  /**
   * Stops serving: disconnects the client, if one is connected (the device
   * then sees a `'lost-connection'` reset), removes the socket and lets the
   * process exit. Idempotent. The work is done when it returns; the promise
   * resolves once the event loop has also released the socket's poll
   * handle, so that nothing of the server is left open.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      forgetOpenServer(this);
      try {
        this.context.close();
      } finally {
        this.doorbells?.close(); // after the library, which holds them
        bindDevice(this.device, undefined);
        this.device.dma.off('fault', this.reportDmaFault);
        dmaBind(this.device.dma, undefined);
        this.emit('close');
      }
    }
    return new Promise((resolve) => setImmediate(resolve));
  }

  private trigger(kind: InterruptKind, vector: number): boolean {
    try {
      return this.context.irqTrigger(vector, irqIndexOf(kind));
    } catch (err) {
      const { code } = err as { code?: unknown };
      // No eventfd for the vector, or the active type has no such vector.
      if (code === 'ENOENT' || code === 'EINVAL') {
        return false;
      }
      throw asVfioUserError(err, 'irq trigger');
    }
  }

  private signalEvent(kind: EventInterruptKind): boolean {
    requireLibraryExtensions('ERR and REQ interrupts');
    try {
      return this.context.irqTrigger(0, kind === 'err' ? IrqType.ERR : IrqType.REQ);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') {
        return false; // the client gave no eventfd
      }
      throw asVfioUserError(err, 'irq trigger');
    }
  }

  private transfer(iova: number, data: Uint8Array, isWrite: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        resolve(ENOTCONN);
        return;
      }
      try {
        this.context.dmaTransfer(iova, data, isWrite, resolve);
      } catch (err) {
        // The library refused at once (EINVAL, ENOMEM...), or a bug.
        const { errno } = err as { errno?: unknown };
        if (typeof errno === 'number' && errno > 0) {
          resolve(errno);
        } else {
          reject(err);
        }
      }
    });
  }

  private readonly reportDmaFault = (err: Error): void => {
    this.emit('dma-fault', err);
    this.emit('log', LOG_WARNING, `DMA fault: ${err.message}`);
  };

  /** Warns when a handler that QEMU waits on has run for `slowHandlerMs` or more since `started`. */
  private checkSlow(name: string, started: number): void {
    const took = performance.now() - started;
    if (took >= this.slowHandlerMs) {
      this.reportSlow(name, took);
    }
  }

  /** Warns that `name`, which QEMU waits on, ran `took` ms (`slowHandlerMs` or more). */
  private reportSlow(name: string, took: number): void {
    this.emit('slow-handler', name, took);
    this.emit('log', LOG_WARNING, `${name} took ${Math.round(took)} ms: QEMU drops a device whose reply takes longer than its x-msg-timeout (5000 ms by default)`);
  }

  private reportError(err: Error): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
    } else {
      process.emitWarning(err.message, { type: 'VfioUserServerError', detail: err.stack });
    }
  }

  private requireMigration(): MigrationRunner {
    if (this.migration === undefined) {
      throw new MigrationStreamError('the device does not migrate');
    }
    return this.migration;
  }


  private makeCallbacks(): DeviceHandlers {
    return nativeCallbacks({
      device: this.device,
      regions: this.regions,
      isConnected: () => this.context.connected,
      migration: () => this.requireMigration(),
      checkSlow: (name, started) => this.checkSlow(name, started),
      reportSlow: (name, took) => this.reportSlow(name, took),
      reportError: (err) => this.reportError(err),
      log: (level, message) => this.emit('log', level, message),
      connected: () => this.emit('connect'),
      disconnected: () => this.emit('disconnect'),
      reset: (kind) => this.emit('reset', kind),
    });
  }
}
