/**
 * `vfio-user inspect SOCKET`: connects as a client and describes the device
 * the way `lspci -vv` would: identity, BARs, capabilities, interrupts and
 * migration, as text or as JSON.
 *
 * @packageDocumentation
 */
import { closeSync } from 'node:fs';

import { VfioUserClient, type RegionIoFds } from '../client';
import { Region } from '../constants';

export interface BarReport {
  readonly index: number;
  readonly size: number;
  readonly kind: 'memory' | 'io';
  readonly is64Bit: boolean;
  readonly prefetchable: boolean;
  readonly readable: boolean;
  readonly writable: boolean;
  /** Areas the client may mmap, `[offset, size]`. */
  readonly mappedAreas: readonly (readonly [number, number])[];
  /** Doorbells the server offers as ioeventfds (DEVICE_GET_REGION_IO_FDS). */
  readonly doorbells: readonly DoorbellReport[];
}

export interface DoorbellReport {
  readonly offset: number;
  /** Bytes a write must have; 0: any. */
  readonly size: number;
  /** The value a write must have, in hex, when it must have one. */
  readonly datamatch?: string;
}

export interface CapabilityReport {
  readonly offset: number;
  readonly id: number;
  readonly name: string;
  readonly extended: boolean;
  /** The decoded fields worth showing, by name. */
  readonly fields: Readonly<Record<string, number | boolean | string>>;
}

export interface DeviceReport {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  readonly revision: number;
  readonly classCode: number;
  readonly interruptPin: number;
  readonly configSize: number;
  readonly canReset: boolean;
  readonly bars: readonly BarReport[];
  readonly capabilities: readonly CapabilityReport[];
  /** Vectors per interrupt kind the device offers. */
  readonly interrupts: Readonly<Record<string, number>>;
  readonly migration: { readonly supported: boolean; readonly preCopy: boolean };
}

const IRQ_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];
const CAPABILITY_NAMES: Readonly<Record<number, string>> = {
  0x01: 'Power Management',
  0x05: 'MSI',
  0x09: 'Vendor Specific',
  0x10: 'PCI Express',
  0x11: 'MSI-X',
};
const EXTENDED_CAPABILITY_NAMES: Readonly<Record<number, string>> = {
  0x0001: 'Advanced Error Reporting',
  0x0003: 'Device Serial Number',
  0x000b: 'Vendor Specific',
};

function decodeCapability(id: number, config: Buffer, at: number): Record<string, number | boolean | string> {
  switch (id) {
    case 0x01:
      return { version: config.readUInt16LE(at + 2) & 0x7 };
    case 0x05: {
      const control = config.readUInt16LE(at + 2);
      return {
        enabled: (control & 1) !== 0,
        vectors: 1 << ((control >> 1) & 7),
        is64Bit: (control & 0x80) !== 0,
        perVectorMasking: (control & 0x100) !== 0,
      };
    }
    case 0x10: {
      const flags = config.readUInt16LE(at + 2);
      return { version: flags & 0xf, deviceType: (flags >> 4) & 0xf };
    }
    case 0x11: {
      const control = config.readUInt16LE(at + 2);
      const table = config.readUInt32LE(at + 4);
      const pba = config.readUInt32LE(at + 8);
      return {
        enabled: (control & 0x8000) !== 0,
        masked: (control & 0x4000) !== 0,
        vectors: (control & 0x7ff) + 1,
        table: `BAR${table & 7}+0x${((table & ~7) >>> 0).toString(16)}`,
        pba: `BAR${pba & 7}+0x${((pba & ~7) >>> 0).toString(16)}`,
      };
    }
    case 0x09:
      return { length: config[at + 2] };
    default:
      return {};
  }
}

/** The standard capability list, then the extended one when config space has it. */
function capabilities(config: Buffer): CapabilityReport[] {
  const found: CapabilityReport[] = [];
  const seen = new Set<number>();
  const hasList = (config.readUInt16LE(6) & 0x10) !== 0;
  for (let at = hasList ? config[0x34] & 0xfc : 0; at >= 0x40 && at + 2 <= Math.min(config.length, 256) && !seen.has(at); at = config[at + 1] & 0xfc) {
    seen.add(at);
    const id = config[at];
    found.push({ offset: at, id, name: CAPABILITY_NAMES[id] ?? `ID 0x${id.toString(16)}`, extended: false, fields: decodeCapability(id, config, at) });
  }
  for (let at = config.length > 256 ? 0x100 : 0; at >= 0x100 && at + 4 <= config.length && !seen.has(at); ) {
    seen.add(at);
    const header = config.readUInt32LE(at);
    const id = header & 0xffff;
    if (header === 0 || id === 0xffff) {
      break;
    }
    found.push({ offset: at, id, name: EXTENDED_CAPABILITY_NAMES[id] ?? `ID 0x${id.toString(16)}`, extended: true, fields: { version: (header >> 16) & 0xf } });
    at = (header >>> 20) & 0xffc;
  }
  return found;
}

/** The ioeventfds a BAR offers, by offset; none from a server that does not answer the request. */
async function doorbells(client: VfioUserClient, region: number): Promise<DoorbellReport[]> {
  let reply: RegionIoFds;
  try {
    reply = await client.getRegionIoFds(region);
  } catch {
    return [];
  }
  reply.fds.forEach((fd) => closeSync(fd));
  return reply.entries
    .filter((entry) => entry.type === 'ioeventfd')
    .sort((a, b) => a.offset - b.offset)
    .map((entry) => ({
      offset: entry.offset,
      size: entry.size,
      ...(entry.datamatch === undefined ? {} : { datamatch: `0x${entry.datamatch.toString(16)}` }),
    }));
}

/** Asks the device at `socket` everything the report shows. */
export async function inspectDevice(socket: string): Promise<DeviceReport> {
  const client = await VfioUserClient.connect(socket);
  try {
    const info = await client.getDeviceInfo();
    const configInfo = await client.getRegionInfo(Region.CONFIG);
    const config = await client.readConfig(0, configInfo.size);
    const bars: BarReport[] = [];
    for (let index = Region.BAR0; index <= Region.BAR5; index++) {
      const region = await client.getRegionInfo(index);
      if (region.fd !== undefined) {
        closeSync(region.fd);
      }
      if (region.size === 0) {
        continue;
      }
      const register = config.readUInt32LE(0x10 + 4 * index);
      const io = (register & 1) !== 0;
      bars.push({
        index,
        size: region.size,
        kind: io ? 'io' : 'memory',
        is64Bit: !io && ((register >> 1) & 3) === 2,
        prefetchable: !io && (register & 8) !== 0,
        readable: region.readable,
        writable: region.writable,
        mappedAreas: region.mappable ? (region.sparseAreas.length > 0 ? region.sparseAreas.map((a) => [a.offset, a.size] as const) : [[0, region.size] as const]) : [],
        doorbells: await doorbells(client, index),
      });
    }
    const interrupts: Record<string, number> = {};
    for (let index = 0; index < Math.min(info.numIrqs, IRQ_NAMES.length); index++) {
      interrupts[IRQ_NAMES[index]] = (await client.getIrqInfo(index)).count;
    }
    let migration = { supported: false, preCopy: false };
    try {
      const features = await client.getMigrationFeatures();
      migration = { supported: features.stopCopy, preCopy: features.preCopy };
    } catch {
      // The device does not migrate: the feature request is refused.
    }
    return {
      vendorId: config.readUInt16LE(0),
      deviceId: config.readUInt16LE(2),
      revision: config[8],
      classCode: config.readUIntLE(9, 3),
      subsystemVendorId: config.readUInt16LE(0x2c),
      subsystemId: config.readUInt16LE(0x2e),
      interruptPin: config[0x3d],
      configSize: config.length,
      canReset: info.canReset,
      bars,
      capabilities: capabilities(config),
      interrupts,
      migration,
    };
  } finally {
    await client.close();
  }
}

const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, '0');

function sizeText(bytes: number): string {
  for (const [unit, scale] of [['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (bytes >= scale && bytes % scale === 0) {
      return `${bytes / scale}${unit}`;
    }
  }
  return `${bytes}`;
}

/** The report as `lspci -vv`-like text. */
export function formatReport(report: DeviceReport): string {
  const lines = [
    `Device ${hex(report.vendorId, 4)}:${hex(report.deviceId, 4)} (rev ${hex(report.revision, 2)}), class ${hex(report.classCode, 6)}`,
    `\tSubsystem: ${hex(report.subsystemVendorId, 4)}:${hex(report.subsystemId, 4)}`,
    `\tInterrupt: pin ${report.interruptPin === 0 ? 'none' : String.fromCharCode(0x40 + report.interruptPin)}`,
    `\tConfig space: ${report.configSize} bytes; device reset ${report.canReset ? 'supported' : 'not supported'}`,
  ];
  for (const bar of report.bars) {
    const kind = bar.kind === 'io' ? 'I/O ports' : `Memory (${bar.is64Bit ? '64-bit' : '32-bit'}, ${bar.prefetchable ? 'prefetchable' : 'non-prefetchable'})`;
    const access = `${bar.readable ? 'r' : '-'}${bar.writable ? 'w' : '-'}`;
    const mapped = bar.mappedAreas.length === 0 ? 'not mappable' : `mapped ${bar.mappedAreas.map(([o, s]) => `0x${o.toString(16)}+${sizeText(s)}`).join(', ')}`;
    lines.push(`\tRegion ${bar.index}: ${kind} [size=${sizeText(bar.size)}] ${access}, ${mapped}`);
    if (bar.doorbells.length > 0) {
      const each = bar.doorbells.map((d) => `0x${d.offset.toString(16)} (${d.size === 0 ? 'any size' : `${d.size} bytes`}${d.datamatch === undefined ? '' : `, =${d.datamatch}`})`);
      lines.push(`\t\tDoorbells: ${each.join(', ')}`);
    }
  }
  for (const cap of report.capabilities) {
    const fields = Object.entries(cap.fields).map(([name, value]) => `${name}=${typeof value === 'boolean' ? (value ? '+' : '-') : value}`);
    lines.push(`\tCapabilities: [${hex(cap.offset, cap.extended ? 3 : 2)}${cap.extended ? ' v' : ''}] ${cap.name}${fields.length > 0 ? `: ${fields.join(' ')}` : ''}`);
  }
  lines.push(`\tInterrupts: ${Object.entries(report.interrupts).map(([kind, count]) => `${kind} ${count}`).join(', ')}`);
  lines.push(`\tMigration: ${report.migration.supported ? `supported${report.migration.preCopy ? ', pre-copy' : ''}` : 'not supported'}`);
  return `${lines.join('\n')}\n`;
}
