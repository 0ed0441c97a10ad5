/**
 * `VfioUserServer`: serves one {@link PciDevice} on a UNIX socket through the
 * native addon and the C library.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { markAsUntransferable } from 'node:worker_threads';
import { guardDetachable } from './detachable-memory';

import { IrqType, irqIndexOf, Region, RegionFlag, ResetType, type EventInterruptKind, type InterruptKind, type ResetKind } from './constants';
import { ConfigRegisters } from './config-registers';
import type { CapabilityKind } from './description';
import { checkHandlerLayout, type PlannedAccessRules } from './device-plan';
import {
  assignedBarHandler,
  bindDevice,
  deliverHeldInterrupts,
  devicePlan,
  heldInterrupts,
  holdInterrupts,
  noInterrupts,
  setMigrationState,
  type DeviceBinding,
  type HeldInterrupts,
  type PciDevice,
} from './device';
import { AccessRuleError, DeviceDescriptionError, MigrationStreamError, OptionsError, VfioUserError } from './errors';
import { checkReadResult, refuseThenable } from './handler-results';
import { requireLibraryExtensions } from './library-features';
import { MigrationRunner, type LibraryState, type MigrationState } from './migration';
import { FieldReader, FieldWriter, type StreamIdentity } from './migration-stream';
import { dmaBind, dmaMapped, dmaUnmapped, type DmaMapping } from './dma';
import { DeviceContext, type DeviceHandlers } from './native';
import { ReadOnlyRegion, type RegionHandler } from './region';

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
const IO_VIEW_BYTES = 64;
const PROT_READ = 1;
const PROT_WRITE = 2;
const LOG_WARNING = 4;
/** Well under QEMU's 5000 ms x-msg-timeout, and far above any handler that keeps up. */
const DEFAULT_SLOW_HANDLER_MS = 1000;
const { ENOTCONN } = constants.errno;

const RESET_KINDS: Readonly<Record<number, ResetKind>> = {
  [ResetType.DEVICE]: 'device',
  [ResetType.LOST_CONN]: 'lost-connection',
  [ResetType.PCI_FLR]: 'flr',
};
const INTERRUPT_KINDS: Readonly<Record<number, InterruptKind>> = {
  [IrqType.INTX]: 'intx',
  [IrqType.MSI]: 'msi',
  [IrqType.MSIX]: 'msix',
};

/** Servers still open, closed when the process exits so their sockets go away. */
const openServers = new Set<VfioUserServer>();
let exitHookInstalled = false;

function closeAllOnExit(): void {
  for (const server of [...openServers]) {
    void server.close();
  }
}

/** Signals whose default action ends the process without an 'exit' event. */
const ENDING_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs first for an ending signal. If the program has no handler of its own
 * for it, closes the servers and raises the signal again, so the process
 * still ends by it; a program that handles the signal decides itself.
 */
function closeAllOnSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) {
    return;
  }
  closeAllOnExit();
  process.removeListener(signal, closeAllOnSignal);
  process.kill(process.pid, signal);
}

/**
 * Native errors carry code/errno/syscall; make them {@link VfioUserError}s.
 * (They come from the addon's realm, so `instanceof Error` may not hold.)
 */
function asVfioUserError(err: unknown, operation: string, detail?: string): Error {
  if (err instanceof VfioUserError) {
    return err;
  }
  const { errno, syscall, message } = (err ?? {}) as { errno?: unknown; syscall?: unknown; message?: unknown };
  if (typeof errno === 'number' && errno > 0) {
    return new VfioUserError(errno, typeof syscall === 'string' ? syscall : operation, detail ?? (typeof message === 'string' ? message : undefined));
  }
  return err instanceof Error ? err : new Error(typeof message === 'string' ? message : String(err));
}

/** A failure of the library itself (not of a handler): the addon names a vfu_* function. */
function isLibraryError(err: Error): err is Error & { syscall: string; errno: number } {
  const { syscall, errno } = err as { syscall?: unknown; errno?: unknown };
  return typeof syscall === 'string' && syscall.startsWith('vfu_') && typeof errno === 'number';
}

function resolveHandler(source: RegionHandler | (() => RegionHandler), field: string): RegionHandler {
  const handler = typeof source === 'function' ? source() : source;
  if (handler === null || typeof handler !== 'object' || typeof handler.read !== 'function' || typeof handler.write !== 'function') {
    throw new DeviceDescriptionError(field, 'did not give an object with read and write methods');
  }
  return handler;
}

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
  private readonly handlers: Array<RegionHandler | undefined> = [];
  /** Each BAR handler's name in error messages, made once rather than per access. */
  private readonly handlerNames: Array<{ readonly read: string; readonly write: string }> = [];
  /** Each BAR's access rules, when its description limits them. */
  private readonly accessRules: Array<PlannedAccessRules | undefined> = [];
  private readonly migration: MigrationRunner | undefined;
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
    for (const bar of plan.bars) {
      const source = bar.handler ?? assignedBarHandler(device, bar.index);
      if (source !== undefined) {
        const handler = resolveHandler(source, `bars (BAR ${bar.index}).handler`);
        checkHandlerLayout(bar, handler, plan.msix);
        this.handlers[bar.index] = handler;
        this.handlerNames[bar.index] = { read: `BAR ${bar.index} read handler`, write: `BAR ${bar.index} write handler` };
      }
      this.accessRules[bar.index] = bar.access;
    }
    if (plan.configRegisters.length > 0) {
      const ranges = plan.configRegisters.map((range) => ({
        offset: range.offset,
        size: range.size,
        header: range.header,
        handler: resolveHandler(range.handler, `configRegisters (at 0x${range.offset.toString(16)}).handler`),
      }));
      this.handlers[Region.CONFIG] = new ConfigRegisters(ranges, () => Buffer.from(this.context.configSpace()));
      this.handlerNames[Region.CONFIG] = { read: 'config registers read', write: 'config registers write' };
    }
    if (plan.expansionRom !== undefined) {
      this.handlers[Region.ROM] = new ReadOnlyRegion(plan.expansionRom.bytes);
      this.handlerNames[Region.ROM] = { read: 'expansion ROM read', write: 'expansion ROM write' };
    }

    const ioBytes = new ArrayBuffer(IO_VIEW_BYTES);
    // The addon keeps a pointer to these bytes: a handler must not be able
    // to transfer them away (structuredClone, postMessage), which would free
    // them under it. Untransferable buffers are copied instead.
    markAsUntransferable(ioBytes);
    const ioViews = Array.from({ length: IO_VIEW_BYTES + 1 }, (_, n) => Buffer.from(ioBytes, 0, n));
    try {
      this.context = new DeviceContext(socket, this.makeHandlers(), ioViews);
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
        ctx.setupRegion(bar.index, bar.size, bar.flags);
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
      if (plan.migration !== undefined) {
        ctx.setupMigration();
        this.migration = this.makeMigrationRunner();
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
      bindDevice(device, undefined);
      device.dma.off('fault', this.reportDmaFault);
      dmaBind(device.dma, undefined);
      throw asVfioUserError(err, 'setup');
    }
    openServers.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', closeAllOnExit);
      for (const signal of ENDING_SIGNALS) {
        process.prependListener(signal, closeAllOnSignal);
      }
    }
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return !this.closed && this.context.connected;
  }

  /** The device's migration state (`'running'` when it does not migrate). */
  get migrationState(): MigrationState {
    return this.migration?.state ?? 'running';
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
      openServers.delete(this);
      try {
        this.context.close();
      } finally {
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
      this.emit('slow-handler', name, took);
      this.emit('log', LOG_WARNING, `${name} took ${Math.round(took)} ms: QEMU drops a device whose reply takes longer than its x-msg-timeout (5000 ms by default)`);
    }
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

  private makeMigrationRunner(): MigrationRunner {
    const device = this.device;
    const plan = devicePlan(device);
    const migration = plan.migration;
    if (migration === undefined) {
      throw new Error('the device does not migrate');
    }
    const identity: StreamIdentity = {
      vendorId: plan.vendorId,
      deviceId: plan.deviceId,
      subsystemVendorId: plan.subsystemVendorId,
      subsystemId: plan.subsystemId,
      classCode: plan.classCode,
      revision: plan.revision,
      configSize: plan.configSize,
      bars: plan.bars.map((bar) => ({ index: bar.index, size: bar.size, flags: bar.flags })),
      irqs: plan.irqs,
      stateVersion: migration.version ?? 1,
    };
    return new MigrationRunner({
      migration,
      identity,
      library: this.libraryState(),
      stop: () => device.onStop(),
      resume: () => {
        device.onResume();
        deliverHeldInterrupts(device);
      },
      changed: (state, previous) => {
        setMigrationState(device, state);
        // The step has happened: a listener that throws does not undo it.
        try {
          this.emit('migration', state, previous);
        } catch (err) {
          this.reportError(err instanceof Error ? err : new Error(String(err)));
        }
      },
    });
  }

  /**
   * What the library keeps for the device: the state of BAR handlers that
   * save it, the emulated MSI-X table and pending bits, and the interrupts
   * raised while stopped.
   */
  private libraryState(): LibraryState {
    const ctx = (): DeviceContext => this.context;
    const plan = devicePlan(this.device);
    const kinds = ['intx', 'msi', 'msix'] as const;
    return {
      save: (): Buffer => {
        const out = new FieldWriter();
        const saving = this.handlers.flatMap((handler, index) =>
          handler?.saveState === undefined ? [] : [{ index, state: handler.saveState() }],
        );
        out.u32(saving.length);
        for (const { index, state } of saving) {
          out.u32(index).bytes(state);
        }
        if (plan.irqs.msix > 0) {
          requireLibraryExtensions('MSI-X state in migration');
        }
        const pending = Uint8Array.from({ length: plan.irqs.msix }, (_, v) =>
          ctx().irqVectorState(IrqType.MSIX, v) & VECTOR_PENDING ? 1 : 0,
        );
        out.bytes(plan.irqs.msix > 0 ? ctx().msixTable() : new Uint8Array(0)).bytes(pending);
        const held = heldInterrupts(this.device);
        for (const kind of kinds) {
          out.u32(held[kind].size);
          for (const vector of held[kind]) {
            out.u32(vector);
          }
        }
        return out.finish();
      },
      // This device's snapshot with every vector held: the same device's is no larger.
      maxSize: (): number => {
        let bars = 4;
        for (const handler of this.handlers) {
          bars += handler?.saveState === undefined ? 0 : 8 + handler.saveState().length;
        }
        const { intx, msi, msix } = plan.irqs;
        return bars + (4 + 16 * msix) + (4 + msix) + 3 * 4 + 4 * (intx + msi + msix);
      },
      prepare: (snapshot: Buffer): (() => void) => {
        const input = new FieldReader(snapshot, 'library state record');
        const bars: Array<{ handler: RegionHandler; state: Buffer }> = [];
        for (let n = input.u32(); n > 0; n--) {
          const index = input.u32();
          const state = input.bytes();
          const handler = this.handlers[index];
          if (handler?.loadState === undefined) {
            throw new MigrationStreamError(`the stream has state for BAR ${index}, whose handler here takes none`);
          }
          bars.push({ handler, state });
        }
        const table = input.bytes();
        const pending = input.bytes();
        if (pending.length !== plan.irqs.msix) {
          throw new MigrationStreamError(`the stream has ${pending.length} MSI-X vectors, this device ${plan.irqs.msix}`);
        }
        const held = {} as HeldInterrupts;
        for (const kind of kinds) {
          held[kind] = new Set();
          for (let n = input.u32(); n > 0; n--) {
            const vector = input.u32();
            if (vector >= plan.irqs[kind]) {
              throw new MigrationStreamError(`the stream holds ${kind} vector ${vector}, which this device does not have`);
            }
            held[kind].add(vector);
          }
        }
        input.end();
        if (plan.irqs.msix > 0) {
          requireLibraryExtensions('MSI-X state in migration');
        }
        const ownTable = plan.irqs.msix > 0 ? ctx().msixTable().length : 0;
        if (plan.irqs.msix > 0 && table.length !== ownTable) {
          throw new MigrationStreamError(`the stream's MSI-X table has ${table.length} bytes, this device's ${ownTable}`);
        }
        return () => {
          for (const { handler, state } of bars) {
            try {
              handler.loadState?.(Buffer.from(state));
            } catch (err) {
              throw new MigrationStreamError(`a BAR handler refused its state: ${(err as Error).message}`);
            }
          }
          if (plan.irqs.msix > 0) {
            ctx().restoreMsix(table, pending);
          }
          holdInterrupts(this.device, held);
        };
      },
    };
  }

  private makeHandlers(): DeviceHandlers {
    const device = this.device;
    return {
      regionAccess: (region: number, offset: number, data: Buffer, isWrite: boolean): void => {
        const handler = this.handlers[region];
        if (handler === undefined) {
          return;
        }
        const rules = this.accessRules[region];
        if (rules !== undefined) {
          checkAccessRules(rules, region, offset, data.length);
        }
        const started = performance.now();
        if (isWrite) {
          if (data.length > IO_VIEW_BYTES) {
            guardDetachable(data.buffer); // memory of the library's message
          }
          refuseThenable(handler.write(offset, data), this.handlerNames[region].write);
          this.checkSlow(this.handlerNames[region].write, started);
        } else {
          // Reads of up to IO_VIEW_BYTES come in the addon's I/O buffer,
          // which it has already zeroed; clearing a 4-byte view here again
          // would cost a call into the TypedArray fill builtin per access.
          if (data.length > IO_VIEW_BYTES) {
            guardDetachable(data.buffer);
            data.fill(0);
          }
          checkReadResult(handler.read(offset, data), data, this.handlerNames[region].read);
          this.checkSlow(this.handlerNames[region].read, started);
        }
      },
      reset: (type: number): void => {
        const kind = RESET_KINDS[type] ?? 'device';
        if (kind === 'lost-connection' && !this.context.connected) {
          // The library also says so when closed with no client: nothing was lost.
          return;
        }
        const started = performance.now();
        if (kind !== 'lost-connection') {
          for (const [index, handler] of this.handlers.entries()) {
            refuseThenable(handler?.reset?.(), `BAR ${index} reset`);
          }
          // As the library forgets its pending interrupts.
          holdInterrupts(device, noInterrupts());
        }
        refuseThenable(device.onReset(kind), 'onReset');
        this.checkSlow('onReset', started);
        this.emit('reset', kind);
      },
      irqState: (type: number, start: number, count: number, masked: boolean): void => {
        const kind = INTERRUPT_KINDS[type];
        if (kind !== undefined) {
          refuseThenable(device.onInterruptMask(kind, start, count, masked), 'onInterruptMask');
        }
      },
      dmaRegister: (iova: number, length: number, prot: number, memory: ArrayBuffer | undefined): void => {
        const mapping: DmaMapping = Object.freeze({
          iova,
          length,
          readable: (prot & PROT_READ) !== 0,
          writable: (prot & PROT_WRITE) !== 0,
          mapped: memory !== undefined,
        });
        if (memory !== undefined) {
          guardDetachable(memory); // guest memory: unmapped by the library, never freed by V8
        }
        dmaMapped(device.dma, mapping, memory);
        refuseThenable(device.onDmaMap(mapping), 'onDmaMap');
        device.dma.emit('map', mapping);
      },
      dmaUnregister: (iova: number, length: number): void => {
        const mapping = dmaUnmapped(device.dma, iova, length);
        if (mapping !== undefined) {
          refuseThenable(device.onDmaUnmap(mapping), 'onDmaUnmap');
          device.dma.emit('unmap', mapping);
        }
      },
      connect: (): void => {
        refuseThenable(device.onConnect(), 'onConnect');
        this.emit('connect');
      },
      disconnect: (): void => {
        refuseThenable(device.onDisconnect(), 'onDisconnect');
        this.emit('disconnect');
      },
      log: (level: number, message: string): void => {
        this.emit('log', level, message);
      },
      migrationTransition: (state: number): void => {
        this.requireMigration().transition(state);
      },
      migrationRead: (into: Buffer): number => this.requireMigration().read(into),
      migrationWrite: (data: Buffer): void => {
        this.requireMigration().write(data);
      },
      error: (err: Error): void => {
        if (isLibraryError(err) && err.syscall === 'vfu_attach_ctx') {
          // A client that failed to connect or negotiate; the next may do better.
          this.emit('log', LOG_WARNING, `a client could not attach: ${err.message}`);
          return;
        }
        if (err instanceof AccessRuleError) {
          this.emit('log', LOG_WARNING, err.message);
          return;
        }
        this.reportError(isLibraryError(err) ? asVfioUserError(err, err.syscall) : err);
      },
    };
  }
}

/** Refuses an access its BAR's rules do not allow, before the handler sees it. */
function checkAccessRules(rules: PlannedAccessRules, region: number, offset: number, count: number): void {
  const { sizeMask } = rules;
  if (sizeMask !== undefined && (count > 8 || (sizeMask & (1 << count)) === 0)) {
    const sizes = [1, 2, 4, 8].filter((n) => (sizeMask & (1 << n)) !== 0).join(', ');
    throw new AccessRuleError(region, offset, count, `the BAR takes accesses of ${sizes} bytes`);
  }
  if (rules.aligned && offset % count !== 0) {
    throw new AccessRuleError(region, offset, count, 'the BAR takes only naturally aligned accesses');
  }
}

/** irqVectorState()'s bits. */
const VECTOR_MASKED = 1;
const VECTOR_PENDING = 2;

function vectorState(ctx: DeviceContext, kind: InterruptKind, vector: number): number {
  requireLibraryExtensions('interrupt mask and pending state');
  return ctx.irqVectorState(irqIndexOf(kind), vector);
}

/**
 * Tells the library which mapped pages the device wrote. While the client
 * logs no dirty pages (the library's granule is 0, read straight from its
 * memory) that costs nothing; with a system library, which hides the
 * granule, every write asks the library.
 */
function dirtyMarker(ctx: DeviceContext): (iova: number, length: number) => void {
  const memory = ctx.dirtyGranule();
  if (memory === undefined) {
    return (iova, length) => ctx.markDirty(iova, length);
  }
  guardDetachable(memory);
  const granule = new Uint32Array(memory);
  return (iova, length) => {
    if ((granule[0] | granule[1]) !== 0) {
      ctx.markDirty(iova, length);
    }
  };
}
