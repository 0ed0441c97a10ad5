/**
 * The handlers of a served device's regions, indexed by region number:
 * its BARs' handlers, the config-space registers it owns and its expansion
 * ROM, each with the names errors give it and the access rules it takes.
 *
 * @packageDocumentation
 */
import { Region } from './constants';
import { ConfigRegisters } from './config-registers';
import { MappedBarHandler } from './bar-memory';
import { assignedBarHandler, barMemoryOf, type PciDevice } from './device';
import { checkHandlerLayout, type DevicePlan, type PlannedAccessRules } from './device-plan';
import { ringDoorbell, withDoorbells } from './doorbells';
import { DeviceDescriptionError } from './errors';
import { ReadOnlyRegion, type RegionHandler } from './region';

/** One region served by TypeScript. */
export interface RegionEntry {
  readonly handler: RegionHandler;
  /** The handler's names in error messages, made once rather than per access. */
  readonly readName: string;
  readonly writeName: string;
}

/** The regions a device serves from TypeScript, and each BAR's access rules. */
export class RegionTable {
  /** Indexed by region number (BARs 0-5, ROM, config). */
  readonly entries: Array<RegionEntry | undefined> = [];
  /** Each BAR's access rules, when its description limits them. */
  readonly accessRules: Array<PlannedAccessRules | undefined> = [];
  /** The mapped BARs' handlers, which count the messages for their mapped ranges. */
  readonly mappedBars = new Map<number, MappedBarHandler>();
  /** The device's own handlers (a mapped BAR's entry wraps its handler), by region. */
  private readonly ownHandlers: Array<RegionHandler | undefined> = [];

  /**
   * @param configSpace - the device's config space as the library holds it,
   *   for config registers that read the bytes around them
   * @throws {@link DeviceDescriptionError} when a handler source gives no handler,
   *   or a register map lies outside its BAR or on the MSI-X table or PBA
   */
  constructor(device: PciDevice, plan: DevicePlan, configSpace: () => Buffer) {
    for (const bar of plan.bars) {
      const source = bar.handler ?? assignedBarHandler(device, bar.index);
      let handler: RegionHandler | undefined;
      if (source !== undefined) {
        handler = resolveHandler(source, `bars (BAR ${bar.index}).handler`);
        checkHandlerLayout(bar, handler, plan.msix);
      }
      const doorbells = plan.doorbells.filter((d) => d.bar === bar.index);
      if (doorbells.length > 0) {
        handler = withDoorbells(handler, doorbells, (doorbell) => ringDoorbell(device, doorbell, 1));
      }
      const readName = `BAR ${bar.index} read handler`;
      const writeName = `BAR ${bar.index} write handler`;
      if (handler !== undefined) {
        this.add(bar.index, handler, readName, writeName);
      }
      const memory = barMemoryOf(device, bar.index);
      if (bar.mapped !== undefined && memory !== undefined) {
        const mapped = new MappedBarHandler(memory.buffer, bar.mapped, handler, `BAR ${bar.index}`);
        this.mappedBars.set(bar.index, mapped);
        this.entries[bar.index] = { handler: mapped, readName, writeName };
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
      this.add(Region.CONFIG, new ConfigRegisters(ranges, configSpace), 'config registers read', 'config registers write');
    }
    if (plan.expansionRom !== undefined) {
      this.add(Region.ROM, new ReadOnlyRegion(plan.expansionRom.bytes), 'expansion ROM read', 'expansion ROM write');
    }
  }

  /** The device's handlers with their region numbers, in region order. */
  *handlers(): IterableIterator<[region: number, handler: RegionHandler]> {
    for (const [region, handler] of this.ownHandlers.entries()) {
      if (handler !== undefined) {
        yield [region, handler];
      }
    }
  }

  /** The device's handler of a region, if it has one. */
  ownHandler(region: number): RegionHandler | undefined {
    return this.ownHandlers[region];
  }

  private add(region: number, handler: RegionHandler, readName: string, writeName: string): void {
    this.entries[region] = { handler, readName, writeName };
    this.ownHandlers[region] = handler;
  }
}

function resolveHandler(source: RegionHandler | (() => RegionHandler), field: string): RegionHandler {
  const handler = typeof source === 'function' ? source() : source;
  if (handler === null || typeof handler !== 'object' || typeof handler.read !== 'function' || typeof handler.write !== 'function') {
    throw new DeviceDescriptionError(field, 'did not give an object with read and write methods');
  }
  return handler;
}
