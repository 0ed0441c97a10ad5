/**
 * The callbacks the addon makes into TypeScript for one served device:
 * region accesses, resets, interrupt masks, DMA mappings, connections,
 * migration and errors, each routed to the device and the server's events.
 *
 * @packageDocumentation
 */
import { IrqType, ResetType, type InterruptKind, type ResetKind } from './constants';
import { guardDetachable } from './detachable-memory';
import { holdInterrupts, noInterrupts, type PciDevice } from './device';
import type { PlannedAccessRules } from './device-plan';
import { dmaMapped, dmaUnmapped, type DmaMapping } from './dma';
import { AccessRuleError } from './errors';
import { checkReadResult, refuseThenable } from './handler-results';
import { asVfioUserError, isLibraryError } from './library-errors';
import type { MigrationRunner } from './migration';
import type { DeviceHandlers } from './native';
import type { RegionTable } from './region-table';

/** Bytes of the addon's I/O buffer: accesses up to this size come in it. */
export const IO_VIEW_BYTES = 64;
const PROT_READ = 1;
const PROT_WRITE = 2;
export const LOG_WARNING = 4;

const RESET_KINDS: Readonly<Record<number, ResetKind>> = {
  [ResetType.DEVICE]: 'device',
  [ResetType.LOST_CONN]: 'lost-connection',
  [ResetType.PCI_FLR]: 'flr',
};
export const INTERRUPT_KINDS: Readonly<Record<number, InterruptKind>> = {
  [IrqType.INTX]: 'intx',
  [IrqType.MSI]: 'msi',
  [IrqType.MSIX]: 'msix',
};

/** What the callbacks need of the server. */
export interface CallbackHost {
  readonly device: PciDevice;
  readonly regions: RegionTable;
  /** True while a client is attached. */
  isConnected(): boolean;
  /** The device's migration runner; throws when it does not migrate. */
  migration(): MigrationRunner;
  /** Warns when `name`, which QEMU waits on, has run too long since `started`. */
  checkSlow(name: string, started: number): void;
  /** Warns that `name`, which QEMU waits on, ran `took` ms, longer than allowed. */
  reportSlow(name: string, took: number): void;
  /** A handler or hook failed: the `'error'` event, or a process warning. */
  reportError(err: Error): void;
  log(level: number, message: string): void;
  connected(): void;
  disconnected(): void;
  reset(kind: ResetKind): void;
}

/** The addon's callbacks for the device `host` serves. */
export function nativeCallbacks(host: CallbackHost): DeviceHandlers {
  const { device, regions } = host;
  const { entries, accessRules } = regions;
  return {
    regionAccess: (region: number, offset: number, data: Buffer, isWrite: boolean): void => {
      const entry = entries[region];
      if (entry === undefined) {
        return;
      }
      const rules = accessRules[region];
      if (rules !== undefined) {
        checkAccessRules(rules, region, offset, data.length);
      }
      // The addon times the call and says when it was slow (slowAccess).
      if (isWrite) {
        if (data.length > IO_VIEW_BYTES) {
          guardDetachable(data.buffer); // memory of the library's message
        }
        refuseThenable(entry.handler.write(offset, data), entry.writeName);
      } else {
        // Reads of up to IO_VIEW_BYTES come in the addon's I/O buffer,
        // which it has already zeroed; clearing a 4-byte view here again
        // would cost a call into the TypedArray fill builtin per access.
        if (data.length > IO_VIEW_BYTES) {
          guardDetachable(data.buffer);
          data.fill(0);
        }
        checkReadResult(entry.handler.read(offset, data), data, entry.readName);
      }
    },
    slowAccess: (region: number, isWrite: boolean, ms: number): void => {
      const entry = entries[region];
      if (entry !== undefined) {
        host.reportSlow(isWrite ? entry.writeName : entry.readName, ms);
      }
    },
    reset: (type: number): void => {
      const kind = RESET_KINDS[type] ?? 'device';
      if (kind === 'lost-connection' && !host.isConnected()) {
        // The library also says so when closed with no client: nothing was lost.
        return;
      }
      const started = performance.now();
      if (kind !== 'lost-connection') {
        for (const [index, handler] of regions.handlers()) {
          refuseThenable(handler.reset?.(), `BAR ${index} reset`);
        }
        // As the library forgets its pending interrupts.
        holdInterrupts(device, noInterrupts());
      }
      refuseThenable(device.onReset(kind), 'onReset');
      host.checkSlow('onReset', started);
      host.reset(kind);
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
      host.connected();
    },
    disconnect: (): void => {
      refuseThenable(device.onDisconnect(), 'onDisconnect');
      host.disconnected();
    },
    log: (level: number, message: string): void => {
      host.log(level, message);
    },
    migrationTransition: (state: number): void => {
      host.migration().transition(state);
    },
    migrationRead: (into: Buffer): number => host.migration().read(into),
    migrationWrite: (data: Buffer): void => {
      host.migration().write(data);
    },
    error: (err: Error): void => {
      if (isLibraryError(err) && err.syscall === 'vfu_attach_ctx') {
        // A client that failed to connect or negotiate; the next may do better.
        host.log(LOG_WARNING, `a client could not attach: ${err.message}`);
        return;
      }
      if (err instanceof AccessRuleError) {
        host.log(LOG_WARNING, err.message);
        return;
      }
      host.reportError(isLibraryError(err) ? asVfioUserError(err, err.syscall) : err);
    },
  };
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
