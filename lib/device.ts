/**
 * `PciDevice`: a device's description and its behaviour. Subclass it (or
 * create one directly) and serve it with a {@link VfioUserServer}.
 *
 * @packageDocumentation
 */
import { createBarMemory, type BarMemory } from './bar-memory';
import { type EventInterruptKind, type InterruptKind, type ResetKind } from './constants';
import type { CapabilityKind, DeviceDescription } from './description';
import { checkHandlerLayout, planDevice, type DevicePlan } from './device-plan';
import type { Doorbell } from './doorbell-plan';
import { DeviceDescriptionError } from './errors';
import { isRunningState, type MigrationState } from './migration';
import { DmaSpace, dmaStopped, type DmaMapping } from './dma';
import type { RegionHandler } from './region';

/**
 * What the server serving a device does for it.
 * @internal
 */
export interface DeviceBinding {
  /**
   * Raises a vector of `kind` if config space makes `kind` the function's
   * interrupt type; false when it does not, or the client set no eventfd.
   */
  trigger(kind: InterruptKind, vector: number): boolean;
  /** The interrupt type the function signals now, as the library decides it. */
  interruptMode(): InterruptKind;
  /** A vector's mask (client's or the function's own) and pending state, from the library. */
  vectorMasked(kind: InterruptKind, vector: number): boolean;
  vectorPending(kind: InterruptKind, vector: number): boolean;
  /** Signals the ERR or REQ interrupt; false when the client gave no eventfd for it. */
  signalEvent(kind: EventInterruptKind): boolean;
  /** The live config space. */
  configSpace(): Buffer;
  /** Config-space offsets of the capabilities added. */
  readonly capabilityOffsets: ReadonlyMap<CapabilityKind, readonly number[]>;
}

/** Interrupts a device raised while stopped for migration, by kind: delivered when it runs again. */
export type HeldInterrupts = Record<InterruptKind, Set<number>>;

/** @internal No vectors of any kind. */
export function noInterrupts(): HeldInterrupts {
  return { intx: new Set(), msi: new Set(), msix: new Set() };
}

/** Per-device state that is not part of the public API. */
class DeviceRuntime {
  binding: DeviceBinding | undefined;
  migrationState: MigrationState = 'running';
  held: HeldInterrupts = noInterrupts();
  /** Handlers given by {@link PciDevice.setBarHandler}, by BAR number. */
  readonly barHandlers = new Map<number, RegionHandler>();
  /** The memory of the mapped BARs, by BAR number. */
  readonly barMemories = new Map<number, BarMemory>();
  constructor(readonly plan: DevicePlan) {}
}

/** A device's runtime (a private field: cheaper to reach than a WeakMap entry on every interrupt). */
let runtimeField: (device: PciDevice) => DeviceRuntime | undefined;

function runtimeOf(device: PciDevice): DeviceRuntime {
  const runtime = runtimeField(device);
  if (runtime === undefined) {
    throw new TypeError('not a constructed PciDevice');
  }
  return runtime;
}

/** Marks objects as devices across copies of this package (the CLI checks it). */
export const PCI_DEVICE_BRAND: unique symbol = Symbol.for('vfio-user.PciDevice');

/**
 * An emulated PCI device: its description (IDs, class, BARs, capabilities,
 * interrupts), validated when it is constructed, and its behaviour: BAR
 * handlers given in the description, and the hook methods below, which a
 * subclass overrides. Hooks are synchronous, like handlers: one that throws
 * or returns a Promise is reported as the server's `'error'`, and an
 * `onReset` that does fails the client's reset request with it.
 *
 * @example
 * ```ts
 * class Timer extends PciDevice {
 *   regs = new RegisterMap({ ctrl: { offset: 0, width: 4, rw: 0x1 } });
 *   constructor() {
 *     super({ vendorId: 0x1b36, deviceId: 0x0100,
 *             bars: [{ index: 0, size: 0x1000 }],
 *             msix: { vectors: 1, bar: 1 } });
 *     this.setBarHandler(0, this.regs);
 *   }
 * }
 * ```
 */
export class PciDevice {
  /** The description the device was constructed with. */
  readonly description: Readonly<DeviceDescription>;
  /** Always true: lets the CLI recognise devices made by another copy of this package. */
  readonly [PCI_DEVICE_BRAND] = true;
  /**
   * Client (guest) memory by DMA: what the client mapped, zero-copy views
   * and synchronous copies where it is mapped into this process, and
   * asynchronous reads and writes that work whether it is or not (see
   * {@link DmaSpace}).
   */
  readonly dma = new DmaSpace();

  readonly #runtime: DeviceRuntime;

  static {
    runtimeField = (device) => (#runtime in device ? device.#runtime : undefined);
  }

  /**
   * @param description - what the device is
   * @throws {@link DeviceDescriptionError} when the description is invalid,
   *   or the memory of a mapped BAR cannot be made
   */
  constructor(description: DeviceDescription) {
    const plan = planDevice(description);
    this.description = description;
    const runtime = new DeviceRuntime(plan);
    for (const bar of plan.bars) {
      if (bar.mapped !== undefined) {
        try {
          runtime.barMemories.set(bar.index, createBarMemory(this, bar.index, bar.size));
        } catch (err) {
          const { code } = err as { code?: unknown };
          throw new DeviceDescriptionError(`bars (BAR ${bar.index}).mapped`, `its ${bar.size} bytes of shared memory cannot be made: ${typeof code === 'string' ? code : String(err)}`);
        }
      }
    }
    this.#runtime = runtime;
  }

  /**
   * The memory of a BAR described with `mapped`: the whole BAR's bytes, at
   * BAR offsets, shared with the client (zero-copy). What the client writes
   * in the mapped ranges is there at once, with no message and no handler
   * call; what the device writes the client reads. Trapped accesses to the
   * mapped ranges (from a client that does not map them) use it too. It
   * lasts as long as the device, across servers and resets (a device
   * reset does not clear it; `onReset` may), and migrates with the device.
   *
   * @throws `DeviceDescriptionError` when the BAR is not mapped
   */
  barMemory(index: number): Buffer {
    const memory = runtimeOf(this).barMemories.get(index);
    if (memory === undefined) {
      throw new DeviceDescriptionError(`bars (BAR ${String(index)}).mapped`, `is not set: BAR ${String(index)} has no shared memory`);
    }
    return memory.buffer;
  }

  /**
   * Gives BAR `index` its handler, for a BAR whose description has none: a
   * subclass calls it after `super()`, once its fields (register maps,
   * memory) exist. The server takes the handler when it starts serving; a
   * later call replaces it for the next server.
   *
   * @throws `DeviceDescriptionError` when the device has no such BAR,
   *   its description already gives the handler, the handler has no read
   *   and write methods, or it is a register map whose registers lie outside
   *   the BAR or on the MSI-X table or PBA
   * @throws Error while the device is being served
   */
  setBarHandler(index: number, handler: RegionHandler): void {
    const runtime = runtimeOf(this);
    const field = `bars (BAR ${String(index)}).handler`;
    if (runtime.binding !== undefined) {
      throw new Error('a BAR handler cannot change while the device is being served');
    }
    const bar = runtime.plan.bars.find((b) => b.index === index);
    if (bar === undefined) {
      const indices = runtime.plan.bars.map((b) => b.index).join(', ');
      throw new DeviceDescriptionError(field, `the device has no BAR ${String(index)} (it has ${indices === '' ? 'none' : indices})`);
    }
    if (bar.handler !== undefined) {
      throw new DeviceDescriptionError(field, 'is already given by the description');
    }
    if (handler === null || typeof handler !== 'object' || typeof handler.read !== 'function' || typeof handler.write !== 'function') {
      throw new DeviceDescriptionError(field, 'must be an object with read and write methods');
    }
    checkHandlerLayout(bar, handler, runtime.plan.msix);
    runtime.barHandlers.set(index, handler);
  }

  /** True while a server serves the device. */
  get served(): boolean {
    return runtimeOf(this).binding !== undefined;
  }

  /**
   * The device's migration state: `'running'` unless a client is migrating
   * it. While it is `'stop'`, `'stop-copy'` or `'resuming'` the device must
   * change nothing a client sees: {@link PciDevice.intx},
   * {@link PciDevice.msi} and {@link PciDevice.msix} hold the interrupt
   * until it runs again (it migrates with the device), and DMA throws a
   * `DeviceStoppedError`.
   */
  get migrationState(): MigrationState {
    return runtimeOf(this).migrationState;
  }

  /**
   * Asserts INTx (INTA#). A device raises INTx only while the driver has
   * neither MSI nor MSI-X enabled in config space, as on hardware; while it
   * has, this does nothing and returns false.
   *
   * The Status register's Interrupt Status bit shows the assertion until the
   * client unmasks INTx after the guest's end of interrupt (or a reset). The
   * command register's Interrupt Disable bit keeps the interrupt off the
   * wire: it is held and goes out when the driver clears the bit.
   * {@link PciDevice.isMasked} reports the bit.
   *
   * While the device is stopped for migration the interrupt is held and
   * raised when it runs again (see {@link PciDevice.migrationState}).
   *
   * @returns whether the interrupt was signalled or held; false when INTx is
   *   not the function's interrupt mode or the client gave no eventfd
   * @throws Error when the description has no `intx: true`
   */
  intx(): boolean {
    const runtime = runtimeOf(this);
    if (runtime.plan.irqs.intx === 0) {
      throw new Error('the device description has no intx: true');
    }
    return signal(runtime, 'intx', 0);
  }

  /**
   * Signals MSI vector `vector`. A device raises MSI only while the driver
   * has MSI enabled (and MSI-X not) in config space, as on hardware; at other
   * times this does nothing and returns false. A vector masked by its
   * per-vector mask bit, or by the client, is held pending (its pending bit
   * set) and delivered when it is unmasked; that counts as raised.
   *
   * While the device is stopped for migration the interrupt is held too, and
   * raised when the device runs again.
   *
   * @returns whether the interrupt was signalled or held pending; false when
   *   MSI is not the function's interrupt mode or the client gave no eventfd
   * @throws RangeError when the vector is not one the description has
   */
  msi(vector = 0): boolean {
    return signal(runtimeOf(this), 'msi', vector);
  }

  /**
   * Signals MSI-X vector `vector`. A device raises MSI-X only while the
   * driver has MSI-X enabled in config space, as on hardware; while it has
   * not, this does nothing and returns false. A vector masked by the function
   * mask, by its table entry or by the client is held pending (its PBA bit
   * set) and delivered when it is unmasked; that counts as raised.
   *
   * While the device is stopped for migration the interrupt is held too, and
   * raised when the device runs again.
   *
   * @returns whether the interrupt was signalled or held pending; false when
   *   MSI-X is not enabled or the client gave no eventfd
   * @throws RangeError when the vector is not one the description has
   */
  msix(vector = 0): boolean {
    return signal(runtimeOf(this), 'msix', vector);
  }

  /**
   * Raises the error interrupt (VFIO's ERR irq): tells the client the device
   * hit an error it cannot recover from. It has no mask and no config-space
   * enable; the client decides what to do (QEMU's vfio-pci stops the VM).
   *
   * Every device has it, as in the C library; the client installs an
   * eventfd for it if it wants it.
   *
   * @returns whether it was signalled: false when the device is not served
   *   or the client gave no eventfd for it
   */
  signalError(): boolean {
    return signalEvent(runtimeOf(this), 'err');
  }

  /**
   * Raises the device request interrupt (VFIO's REQ irq): asks the client to
   * give the device up (QEMU's vfio-pci then asks the guest to unplug it).
   *
   * Every device has it; the client installs an eventfd for it if it wants it.
   *
   * @returns whether it was signalled: false when the device is not served
   *   or the client gave no eventfd for it
   */
  requestRemoval(): boolean {
    return signalEvent(runtimeOf(this), 'req');
  }

  /**
   * Whether an interrupt vector is masked now: by the client's SET_IRQS, by
   * the command register's Interrupt Disable bit (INTx, held meanwhile:
   * {@link PciDevice.intx} returns true), by its per-vector
   * mask bit (MSI), or by the function mask or its table entry (MSI-X).
   */
  isMasked(kind: InterruptKind, vector = 0): boolean {
    const runtime = runtimeOf(this);
    checkVector(runtime, kind, vector);
    return runtime.binding?.vectorMasked(kind, vector) ?? false;
  }

  /**
   * Whether an MSI or MSI-X vector is held pending: it was masked when
   * signalled, or the device was stopped for migration.
   */
  isPending(kind: 'msi' | 'msix', vector = 0): boolean {
    const runtime = runtimeOf(this);
    checkVector(runtime, kind, vector);
    if (runtime.held[kind].has(vector)) {
      return true;
    }
    return runtime.binding?.vectorPending(kind, vector) ?? false;
  }

  /**
   * The device's config space, live and zero-copy, as the client programs it
   * (command register, BAR addresses, MSI/MSI-X control). Read it; writing it
   * bypasses the PCI rules the library applies to client writes.
   *
   * @throws Error when the device is not being served
   */
  configSpace(): Buffer {
    const { binding } = runtimeOf(this);
    if (binding === undefined) {
      throw new Error('the device is not being served');
    }
    return binding.configSpace();
  }

  /**
   * Config-space offset of a capability the description asked for, once the
   * device is served (the first one for `'vendor'` and `'extended-vendor'`).
   */
  capabilityOffset(kind: CapabilityKind): number | undefined {
    return capabilityOffsetOf(runtimeOf(this), kind);
  }

  /**
   * Hook: the device is being reset. Register maps and other BAR handlers
   * with a `reset()` method have already been reset, except for
   * `'lost-connection'`, where the client went away and state is kept.
   */
  onReset(kind: ResetKind): void {
    void kind;
  }

  /** Hook: a client connected. */
  onConnect(): void {}

  /** Hook: the client disconnected; its DMA mappings and eventfds are gone, device state is kept. */
  onDisconnect(): void {}

  /** Hook: the client masked or unmasked vectors with SET_IRQS. */
  onInterruptMask(kind: InterruptKind, start: number, count: number, masked: boolean): void {
    void kind;
    void start;
    void count;
    void masked;
  }

  /**
   * Hook: the device stops for migration (the client moved it from
   * `'running'` or `'pre-copy'` to `'stop'` or `'stop-copy'`). Stop timers
   * and work here; DMA is still allowed during this call, to finish or park
   * a transfer (save what is in flight with the state and resume it in
   * {@link PciDevice.onResume} on the destination). Throwing refuses the
   * transition.
   */
  onStop(): void {}

  /**
   * Hook: the device runs again (from `'stop'` to `'running'`), on the
   * source after a cancelled migration or on the destination after its
   * state was loaded. Interrupts held while stopped are delivered after it
   * returns. Throwing refuses the transition.
   */
  onResume(): void {}

  /**
   * Hook: a doorbell of the description's `doorbells` was written, `kicks`
   * times since the last call (kicks through an eventfd add up until the
   * device runs; a matching REGION_WRITE is one kick). The value written is
   * not known: a doorbell only says "look now". Throwing is reported as the
   * server's `'error'` (and fails the client's write when it came as a
   * REGION_WRITE).
   */
  onDoorbell(doorbell: Doorbell, kicks: number): void {
    void doorbell;
    void kicks;
  }

  /** Hook: the client mapped memory for DMA (before `dma` emits `'map'`). */
  onDmaMap(mapping: DmaMapping): void {
    void mapping;
  }

  /** Hook: the client unmapped memory (before `dma` emits `'unmap'`); views of it become empty after. */
  onDmaUnmap(mapping: DmaMapping): void {
    void mapping;
  }
}

// The helpers below are module functions, not methods, so that a subclass
// (or a plain-JS device) with members of the same names neither clashes
// with them nor replaces them.

function capabilityOffsetOf(runtime: DeviceRuntime, kind: CapabilityKind): number | undefined {
  return runtime.binding?.capabilityOffsets.get(kind)?.[0];
}

function checkVector(runtime: DeviceRuntime, kind: InterruptKind, vector: number): void {
  const count = runtime.plan.irqs[kind];
  if (!Number.isInteger(vector) || vector < 0 || vector >= count) {
    throw new RangeError(`${kind} vector ${vector} does not exist: the device has ${count}`);
  }
}

function signalEvent(runtime: DeviceRuntime, kind: EventInterruptKind): boolean {
  return runtime.binding?.signalEvent(kind) ?? false;
}

/**
 * Raises a vector if `kind` is the function's interrupt type (the library
 * decides), or holds it while the device is stopped for migration.
 */
function signal(runtime: DeviceRuntime, kind: InterruptKind, vector: number): boolean {
  checkVector(runtime, kind, vector);
  const { binding } = runtime;
  if (binding === undefined) {
    return false;
  }
  if (isRunningState(runtime.migrationState)) {
    return binding.trigger(kind, vector);
  }
  if (binding.interruptMode() !== kind) {
    return false;
  }
  runtime.held[kind].add(vector);
  return true;
}

/** @internal The validated plan of a device. */
export function devicePlan(device: PciDevice): DevicePlan {
  return runtimeOf(device).plan;
}

/** @internal The handler {@link PciDevice.setBarHandler} gave BAR `index`, if any. */
export function assignedBarHandler(device: PciDevice, index: number): RegionHandler | undefined {
  return runtimeOf(device).barHandlers.get(index);
}

/** @internal The memory of the mapped BAR `index`, if it is one. */
export function barMemoryOf(device: PciDevice, index: number): BarMemory | undefined {
  return runtimeOf(device).barMemories.get(index);
}

/** @internal Connects a device to the server serving it (undefined: disconnects). */
export function bindDevice(device: PciDevice, binding: DeviceBinding | undefined): void {
  const runtime = runtimeOf(device);
  if (binding !== undefined && runtime.binding !== undefined) {
    throw new Error('the device is already being served');
  }
  runtime.binding = binding;
}

/** @internal Records the device's migration state. */
export function setMigrationState(device: PciDevice, state: MigrationState): void {
  runtimeOf(device).migrationState = state;
  dmaStopped(device.dma, isRunningState(state) ? undefined : state);
}

/** @internal The interrupts held while stopped. */
export function heldInterrupts(device: PciDevice): HeldInterrupts {
  return runtimeOf(device).held;
}

/** @internal Replaces the interrupts held (a migrated device's). */
export function holdInterrupts(device: PciDevice, held: HeldInterrupts): void {
  runtimeOf(device).held = held;
}

/**
 * @internal Delivers the interrupts held while stopped, in the mode config
 * space enables now (a held kind the driver has since left is dropped, as
 * raising it would be).
 */
export function deliverHeldInterrupts(device: PciDevice): void {
  const runtime = runtimeOf(device);
  const { held, binding } = runtime;
  runtime.held = noInterrupts();
  if (binding === undefined) {
    return;
  }
  const mode = binding.interruptMode();
  for (const vector of held[mode]) {
    binding.trigger(mode, vector);
  }
}
