/**
 * A served device's migration: the runner that answers the library's
 * migration callbacks, and the state the library keeps for the device
 * (BAR handlers' state, the MSI-X table and pending bits, the interrupts
 * held while stopped, the memory of mapped BARs), carried ahead of the
 * device's own.
 *
 * @packageDocumentation
 */
import { IrqType } from './constants';
import { deliverHeldInterrupts, devicePlan, heldInterrupts, holdInterrupts, setMigrationState, type HeldInterrupts, type PciDevice } from './device';
import { MigrationStreamError } from './errors';
import { VECTOR_PENDING } from './library-queries';
import { requireLibraryExtensions } from './library-features';
import { MigrationRunner, type LibraryState, type MigrationState } from './migration';
import { FieldReader, FieldWriter, type StreamIdentity } from './migration-stream';
import type { DeviceContext } from './native';
import type { RegionHandler } from './region';
import type { RegionTable } from './region-table';

/** What the runner needs of the server. */
export interface MigrationHost {
  readonly device: PciDevice;
  readonly regions: RegionTable;
  /** The library's context (made after the runner). */
  context(): DeviceContext;
  /** The device moved to `state`. */
  changed(state: MigrationState, previous: MigrationState): void;
}

/** The runner of a device that declares `migration`. */
export function deviceMigrationRunner(host: MigrationHost): MigrationRunner {
  const { device } = host;
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
    library: libraryState(host),
    stop: () => device.onStop(),
    resume: () => {
      device.onResume();
      deliverHeldInterrupts(device);
    },
    changed: (state, previous) => {
      setMigrationState(device, state);
      host.changed(state, previous);
    },
  });
}

const KINDS = ['intx', 'msi', 'msix'] as const;

/** What the library keeps for the device, as one record of the stream. */
function libraryState(host: MigrationHost): LibraryState {
  const { device, regions } = host;
  const plan = devicePlan(device);
  const { msix } = plan.irqs;
  const mappedBars = plan.bars.filter((bar) => bar.mapped !== undefined);
  return {
    save: (): Buffer => {
      const out = new FieldWriter();
      const saving = [...regions.handlers()].flatMap(([index, handler]) =>
        handler.saveState === undefined ? [] : [{ index, state: handler.saveState() }],
      );
      out.u32(saving.length);
      for (const { index, state } of saving) {
        out.u32(index).bytes(state);
      }
      if (msix > 0) {
        requireLibraryExtensions('MSI-X state in migration');
      }
      const ctx = host.context();
      const pending = Uint8Array.from({ length: msix }, (_, v) => (ctx.irqVectorState(IrqType.MSIX, v) & VECTOR_PENDING ? 1 : 0));
      out.bytes(msix > 0 ? ctx.msixTable() : new Uint8Array(0)).bytes(pending);
      const held = heldInterrupts(device);
      for (const kind of KINDS) {
        out.u32(held[kind].size);
        for (const vector of held[kind]) {
          out.u32(vector);
        }
      }
      out.u32(mappedBars.length);
      for (const bar of mappedBars) {
        out.u32(bar.index).bytes(device.barMemory(bar.index));
      }
      return out.finish();
    },
    // This device's snapshot with every vector held: the same device's is no larger.
    maxSize: (): number => {
      let bars = 4;
      for (const [, handler] of regions.handlers()) {
        bars += handler.saveState === undefined ? 0 : 8 + handler.saveState().length;
      }
      const { intx, msi } = plan.irqs;
      const memories = mappedBars.reduce((sum, bar) => sum + 8 + bar.size, 4);
      return bars + (4 + 16 * msix) + (4 + msix) + 3 * 4 + 4 * (intx + msi + msix) + memories;
    },
    prepare: (snapshot: Buffer): (() => void) => {
      const input = new FieldReader(snapshot, 'library state record');
      const bars: Array<{ handler: RegionHandler; state: Buffer }> = [];
      for (let n = input.u32(); n > 0; n--) {
        const index = input.u32();
        const state = input.bytes();
        const handler = regions.ownHandler(index);
        if (handler?.loadState === undefined) {
          throw new MigrationStreamError(`the stream has state for BAR ${index}, whose handler here takes none`);
        }
        bars.push({ handler, state });
      }
      const table = input.bytes();
      const pending = input.bytes();
      if (pending.length !== msix) {
        throw new MigrationStreamError(`the stream has ${pending.length} MSI-X vectors, this device ${msix}`);
      }
      const held = {} as HeldInterrupts;
      for (const kind of KINDS) {
        held[kind] = new Set();
        for (let n = input.u32(); n > 0; n--) {
          const vector = input.u32();
          if (vector >= plan.irqs[kind]) {
            throw new MigrationStreamError(`the stream holds ${kind} vector ${vector}, which this device does not have`);
          }
          held[kind].add(vector);
        }
      }
      const memories: Array<{ memory: Buffer; state: Buffer }> = [];
      for (let n = input.u32(); n > 0; n--) {
        const index = input.u32();
        const state = input.bytes();
        const bar = mappedBars.find((b) => b.index === index);
        if (bar === undefined) {
          throw new MigrationStreamError(`the stream has the memory of mapped BAR ${index}, which is not mapped here`);
        }
        if (state.length !== bar.size) {
          throw new MigrationStreamError(`the stream's memory of mapped BAR ${index} has ${state.length} bytes, this device's ${bar.size}`);
        }
        memories.push({ memory: device.barMemory(index), state });
      }
      if (memories.length !== mappedBars.length) {
        throw new MigrationStreamError(`the stream has the memory of ${memories.length} mapped BARs, this device has ${mappedBars.length}`);
      }
      input.end();
      if (msix > 0) {
        requireLibraryExtensions('MSI-X state in migration');
      }
      const ownTable = msix > 0 ? host.context().msixTable().length : 0;
      if (msix > 0 && table.length !== ownTable) {
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
        for (const { memory, state } of memories) {
          state.copy(memory);
        }
        if (msix > 0) {
          host.context().restoreMsix(table, pending);
        }
        holdInterrupts(device, held);
      };
    },
  };
}
