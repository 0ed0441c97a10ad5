/**
 * Every way a description (or the server's options) can be wrong throws a
 * typed error naming the field, when the device or server is constructed,
 * before anything listens.
 */
import { existsSync } from 'node:fs';

import {
  ConfigurationError,
  DeviceDescriptionError,
  MemoryRegion,
  OptionsError,
  PciDevice,
  RegisterMap,
  VfioUserError,
  VfioUserServer,
  type DeviceDescription,
} from '../../lib';
import { errorLike } from '../error-like';
import { socketPath } from '../helpers';
import { descriptionError } from '../support/description-error';

const base: DeviceDescription = { vendorId: 0x1b36, deviceId: 0x0100 };
const regs = (specs: Record<string, { offset: number; width: 1 | 2 | 4 }>): RegisterMap => new RegisterMap(specs);

/** [what, description fields over `base`, field named, message]. */
const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
  // IDs and class
  ['vendor ID 0xffff (no device)', { vendorId: 0xffff }, 'vendorId', /0xfffe/],
  ['vendor ID over 16 bits', { vendorId: 0x10000 }, 'vendorId', /integer/],
  ['negative device ID', { deviceId: -1 }, 'deviceId', /integer/],
  ['device ID over 16 bits', { deviceId: 0x10000 }, 'deviceId', /0xffff/],
  ['fractional subsystem vendor ID', { subsystemVendorId: 1.5 }, 'subsystemVendorId', /integer/],
  ['subsystem ID over 16 bits', { subsystemId: 0x12345 }, 'subsystemId', /0xffff/],
  ['class code over 24 bits', { classCode: 0x1000000 }, 'classCode', /0xffffff/],
  ['class code as a string', { classCode: '0x020000' }, 'classCode', /integer/],
  ['revision over 8 bits', { revision: 0x100 }, 'revision', /0xff/],
  ['unknown PCI type', { pciType: 'pcie' }, 'pciType', /conventional/],
  ['misspelt field', { msiX: { vectors: 1, bar: 1 } }, 'msiX', /not a field/],
  ['intx not a boolean', { intx: 1 }, 'intx', /true or false/],
  // BARs
  ['BAR size not a power of two', { bars: [{ index: 0, size: 0x1800 }] }, 'bars[0].size', /power of two/],
  ['BAR size zero', { bars: [{ index: 0, size: 0 }] }, 'bars[0].size', /power of two/],
  ['memory BAR under 16 bytes', { bars: [{ index: 0, size: 8 }] }, 'bars[0].size', /16 bytes/],
  ['32-bit memory BAR over 2 GiB', { bars: [{ index: 0, size: 2 ** 32 }] }, 'bars[0].size', /32-bit/],
  ['64-bit memory BAR over 2^52', { bars: [{ index: 0, size: 2 ** 53, bits64: true }] }, 'bars[0].size', /at most 2\^52/],
  ['I/O BAR under 4 bytes', { bars: [{ index: 0, size: 2, memory: false }] }, 'bars[0].size', /I\/O BAR/],
  ['I/O BAR over 256 bytes', { bars: [{ index: 0, size: 512, memory: false }] }, 'bars[0].size', /I\/O BAR/],
  ['I/O BAR 64-bit', { bars: [{ index: 0, size: 16, memory: false, bits64: true }] }, 'bars[0]', /I\/O/],
  ['I/O BAR prefetchable', { bars: [{ index: 0, size: 16, memory: false, prefetchable: true }] }, 'bars[0]', /I\/O/],
  ['BAR index 6, the ROM', { bars: [{ index: 6, size: 16 }] }, 'bars[0].index', /expansion ROM/],
  ['BAR index 7, config space', { bars: [{ index: 7, size: 16 }] }, 'bars[0].index', /config space/],
  ['negative BAR index', { bars: [{ index: -1, size: 16 }] }, 'bars[0].index', /integer/],
  ['64-bit BAR at index 5', { bars: [{ index: 5, size: 16, bits64: true }] }, 'bars[0].bits64', /index 5/],
  ['64-bit BAR at an odd index', { bars: [{ index: 3, size: 16, bits64: true }] }, 'bars[0].bits64', /even index/],
  ['the same BAR twice', { bars: [{ index: 1, size: 16 }, { index: 1, size: 32 }] }, 'bars[1].index', /twice/],
  ['a BAR on the upper half of a 64-bit BAR', { bars: [{ index: 2, size: 16, bits64: true }, { index: 3, size: 16 }] }, 'bars[1].index', /upper half/],
  ['a 64-bit BAR whose upper half is taken', { bars: [{ index: 1, size: 16 }, { index: 0, size: 16, bits64: true }] }, 'bars[1].index', /upper half/],
  ['bits64 not a boolean', { bars: [{ index: 0, size: 16, bits64: 'yes' }] }, 'bars[0].bits64', /true or false/],
  ['unknown BAR field', { bars: [{ index: 0, size: 16, kind: 'mmio' }] }, 'bars[0].kind', /not a field/],
  ['a handler without read and write', { bars: [{ index: 0, size: 16, handler: { read: () => undefined } }] }, 'bars[0].handler', /read and write/],
  ['bars not an array', { bars: { index: 0, size: 16 } }, 'bars', /array/],
  ['registers past the end of their BAR', { bars: [{ index: 0, size: 16, handler: regs({ a: { offset: 0x10, width: 4 } }) }] }, 'bars (BAR 0).handler.registers.a', /outside BAR 0/],
  // MSI-X
  ['MSI-X with 2049 vectors', { msix: { vectors: 2049, bar: 1 } }, 'msix.vectors', /2048/],
  ['MSI-X with no vectors', { msix: { vectors: 0, bar: 1 } }, 'msix.vectors', /1 to 2048/],
  ['MSI-X table offset not 8-aligned', { bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 1, bar: 0, tableOffset: 4 } }, 'msix.tableOffset', /multiple of 8/],
  ['MSI-X table past its BAR', { bars: [{ index: 0, size: 0x100 }], msix: { vectors: 16, bar: 0, tableOffset: 0x80 } }, 'msix.tableOffset', /does not fit/],
  ['MSI-X PBA past its BAR', { bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 16, bar: 0, tableOffset: 0, pbaOffset: 0x1000 } }, 'msix.pbaOffset', /does not fit/],
  ['MSI-X table and PBA overlapping', { bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 16, bar: 0, tableOffset: 0, pbaOffset: 0x80 } }, 'msix.pbaOffset', /overlap/],
  ['MSI-X table in an I/O BAR', { bars: [{ index: 0, size: 256, memory: false }], msix: { vectors: 1, bar: 0, tableOffset: 0 } }, 'msix.tableOffset', /memory BAR/],
  ['MSI-X table sharing a BAR without an offset', { bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 1, bar: 0 } }, 'msix.tableOffset', /required/],
  ['MSI-X PBA in another BAR without an offset', { msix: { vectors: 1, bar: 1, pbaBar: 2 } }, 'msix.pbaOffset', /required/],
  ['MSI-X in the upper half of a 64-bit BAR', { bars: [{ index: 0, size: 0x1000, bits64: true }], msix: { vectors: 1, bar: 1, tableOffset: 0 } }, 'msix.tableOffset', /not described/],
  ['MSI-X BAR index 6', { msix: { vectors: 1, bar: 6 } }, 'msix.bar', /integer/],
  [
    "MSI-X table over a register map's registers",
    { bars: [{ index: 0, size: 0x1000, handler: regs({ ctrl: { offset: 0x800, width: 4 } }) }], msix: { vectors: 4, bar: 0, tableOffset: 0x800, pbaOffset: 0xc00 } },
    'bars (BAR 0).handler.registers.ctrl',
    /MSI-X table/,
  ],
  [
    "MSI-X PBA over a register map's registers",
    { bars: [{ index: 0, size: 0x1000, handler: regs({ ctrl: { offset: 0xc04, width: 4 } }) }], msix: { vectors: 4, bar: 0, tableOffset: 0x800, pbaOffset: 0xc00 } },
    'bars (BAR 0).handler.registers.ctrl',
    /MSI-X PBA/,
  ],
  // MSI and the other capabilities
  ['MSI with 64 vectors', { msi: { vectors: 64 } }, 'msi.vectors', /32/],
  ['MSI with 3 vectors (not a power of two)', { msi: { vectors: 3 } }, 'msi.vectors', /1, 2, 4/],
  ['MSI option misspelt', { msi: { vectors: 1, mask: true } }, 'msi.mask', /not a field/],
  ['MSI 64-bit flag not a boolean', { msi: { vectors: 1, address64: 1 } }, 'msi.address64', /true or false/],
  ['PM version 4', { pm: { version: 4 } }, 'pm.version', /1 to 3/],
  ['PM soft reset, which the library does not perform', { pm: { noSoftReset: false } }, 'pm.noSoftReset', /D3hot to D0 does not reset/],
  ['PCIe without the express type', { pcie: true, pciType: 'conventional' }, 'pcie', /express/],
  ['PCIe max payload not a power of two', { pcie: { maxPayloadSize: 300 } }, 'pcie.maxPayloadSize', /power of two/],
  ['vendor capability neither bytes nor live', { vendorCapabilities: ['abc'] }, 'vendorCapabilities[0]', /must be a Uint8Array or a \{ length, handler \} object/],
  ['vendor capability over 252 bytes', { vendorCapabilities: [new Uint8Array(253)] }, 'vendorCapabilities', /at most 252/],
  ['standard capabilities past 256 bytes', { vendorCapabilities: [new Uint8Array(200), new Uint8Array(60)] }, 'capabilities', /bytes/],
  ['serial number on conventional PCI', { serialNumber: 1n }, 'serialNumber', /4 KiB/],
  ['serial number over 64 bits', { pcie: true, serialNumber: 1n << 64n }, 'serialNumber', /2\^64/],
  [
    'extended capabilities past 4 KiB',
    { pcie: true, extendedVendorCapabilities: [{ vsecId: 1, data: new Uint8Array(0xff0) }, { vsecId: 2, data: new Uint8Array(0x100) }] },
    'extendedVendorCapabilities',
    /more than the 3840/,
  ],
  ['DMA with no mappings', { dma: { maxMappings: 0 } }, 'dma.maxMappings', /integer/],
  ['DMA option misspelt', { dma: { max: 4 } }, 'dma.max', /not a field/],
  ['migration option misspelt', { migration: { save: () => Buffer.alloc(0), load: () => undefined, restore: () => undefined } }, 'migration.restore', /not a field/],
  ['migration without save', { migration: { load: () => undefined } }, 'migration.save', /required/],
];

describe('bad device descriptions', () => {
  test.each(cases)('%s', (_what, fields, field, message) => {
    const err = descriptionError(() => new PciDevice({ ...base, ...fields }), field, message);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    // One hierarchy: a description error is a configuration error and a VfioUserError.
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err).toBeInstanceOf(VfioUserError);
    expect(err.code).toBe('EINVAL');
  });

  test('the same descriptions made valid are accepted', () => {
    expect(() => new PciDevice({ ...base, bars: [{ index: 0, size: 16, handler: regs({ a: { offset: 0xc, width: 4 } }) }] })).not.toThrow();
    expect(
      () =>
        new PciDevice({
          ...base,
          bars: [{ index: 0, size: 0x1000, handler: regs({ ctrl: { offset: 0x7fc, width: 4 }, after: { offset: 0xc08, width: 4 } }) }],
          msix: { vectors: 4, bar: 0, tableOffset: 0x800, pbaOffset: 0xc00 },
        }),
    ).not.toThrow();
    expect(() => new PciDevice({ ...base, msi: { vectors: 32 }, msix: { vectors: 2048, bar: 2 } })).not.toThrow();
    expect(() => new PciDevice({ ...base, bars: [{ index: 4, size: 2 ** 52, bits64: true }] })).not.toThrow();
  });
});

describe('bad server options and handlers, before listening', () => {
  const device = (): PciDevice => new PciDevice({ ...base, bars: [{ index: 0, size: 16, handler: new MemoryRegion(16) }] });

  test.each([
    ['a socket path of 108 bytes (no room for the NUL)', '/tmp/' + 'x'.repeat(103), 'socket', /longer than the 107/],
    ['a socket path of 108 bytes in UTF-8', '/tmp/' + 'é'.repeat(51) + 'x', 'socket', /108 bytes/],
    ['an empty socket path', '', 'socket', /required/],
    ['a socket path with NUL', '/tmp/a\0b', 'socket', /NUL/],
  ])('%s', (_what, socket, field, message) => {
    let caught: unknown;
    try {
      new VfioUserServer(device(), { socket });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptionsError);
    expect(caught).toBeInstanceOf(ConfigurationError);
    expect((caught as OptionsError).field).toBe(field);
    expect((caught as Error).message).toMatch(message);
    if (socket !== '' && !socket.includes('\0')) {
      expect(existsSync(socket)).toBe(false);
    }
  });

  test('a socket path of 107 bytes is served', async () => {
    const dir = socketPath().replace(/\/[^/]*$/, '');
    const socket = `${dir}/${'s'.repeat(107 - dir.length - 1)}`;
    expect(Buffer.byteLength(socket)).toBe(107);
    const server = new VfioUserServer(device(), { socket });
    try {
      expect(existsSync(socket)).toBe(true);
    } finally {
      await server.close();
    }
  });

  test('a bad log level', () => {
    expect(() => new VfioUserServer(device(), { socket: socketPath(), logLevel: 8 })).toThrow(OptionsError);
  });

  test('a handler function whose register map collides with MSI-X fails before the socket exists', () => {
    const socket = socketPath();
    const late = new PciDevice({
      ...base,
      bars: [{ index: 0, size: 0x1000, handler: () => regs({ ctrl: { offset: 0x800, width: 4 } }) }],
      msix: { vectors: 4, bar: 0, tableOffset: 0x800, pbaOffset: 0xc00 },
    });
    expect(() => new VfioUserServer(late, { socket })).toThrow(
      errorLike({ name: 'DeviceDescriptionError', field: 'bars (BAR 0).handler.registers.ctrl' }),
    );
    expect(existsSync(socket)).toBe(false);
    expect(late.served).toBe(false);
  });

  test('a handler function that returns no handler fails before the socket exists', () => {
    const socket = socketPath();
    const broken = new PciDevice({ ...base, bars: [{ index: 0, size: 16, handler: () => 42 as never }] });
    expect(() => new VfioUserServer(broken, { socket })).toThrow(DeviceDescriptionError);
    expect(existsSync(socket)).toBe(false);
  });
});
