import { CapabilityFlag, PciType, RegionFlag } from '../../lib/constants';
import type { DeviceDescription } from '../../lib/description';
import { planDevice } from '../../lib/device-plan';
import { DeviceDescriptionError } from '../../lib/errors';
import { MemoryRegion } from '../../lib/region';
import { descriptionError } from '../support/description-error';

const base: DeviceDescription = { vendorId: 0x1b36, deviceId: 0x0100 };

function refused(description: Partial<DeviceDescription> & Record<string, unknown>, field: string, message?: RegExp): void {
  descriptionError(() => planDevice({ ...base, ...description }), field, message);
}

describe('device descriptions', () => {
  test('a minimal description gets the defaults', () => {
    const plan = planDevice(base);
    expect(plan.pciType).toBe(PciType.CONVENTIONAL);
    expect(plan.configSize).toBe(256);
    expect(plan.classCode).toEqual([0xff, 0, 0]);
    expect(plan.bars).toEqual([]);
    expect(plan.capabilities).toEqual([]);
    expect(plan.irqs).toEqual({ intx: 0, msi: 0, msix: 0 });
    expect(plan.dmaMaxMappings).toBe(1024);
  });

  test('IDs, class and revision', () => {
    const plan = planDevice({
      ...base,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      classCode: 0x058001,
      revision: 7,
    });
    expect(plan).toMatchObject({ vendorId: 0x1b36, deviceId: 0x100, subsystemVendorId: 0x1af4, subsystemId: 0x1100, revision: 7 });
    expect(plan.classCode).toEqual([0x05, 0x80, 0x01]);
    refused({ vendorId: 0xffff }, 'vendorId');
    refused({ deviceId: 0x10000 }, 'deviceId');
    refused({ classCode: 0x1000000 }, 'classCode');
    refused({ revision: 1.5 }, 'revision');
    refused({ subsystemId: -1 }, 'subsystemId');
  });

  test('BAR kinds become region flags', () => {
    const plan = planDevice({
      ...base,
      bars: [
        { index: 2, size: 0x100000, bits64: true, prefetchable: true },
        { index: 0, size: 0x1000 },
        { index: 5, size: 256, memory: false },
      ],
    });
    expect(plan.bars.map((b) => [b.index, b.size, b.flags])).toEqual([
      [0, 0x1000, RegionFlag.READ | RegionFlag.WRITE | RegionFlag.MEM],
      [2, 0x100000, RegionFlag.READ | RegionFlag.WRITE | RegionFlag.MEM | RegionFlag.BITS_64 | RegionFlag.PREFETCH],
      [5, 256, RegionFlag.READ | RegionFlag.WRITE],
    ]);
  });

  test('bad BARs are refused', () => {
    refused({ bars: [{ index: 0, size: 0x1800 }] }, 'bars[0].size', /power of two/);
    refused({ bars: [{ index: 0, size: 8 }] }, 'bars[0].size', /16 bytes/);
    refused({ bars: [{ index: 0, size: 512, memory: false }] }, 'bars[0].size', /I\/O BAR/);
    refused({ bars: [{ index: 0, size: 2 ** 32 }] }, 'bars[0].size', /32-bit/);
    refused({ bars: [{ index: 6, size: 16 }] }, 'bars[0].index');
    refused({ bars: [{ index: 5, size: 16, bits64: true }] }, 'bars[0].bits64', /index 5/);
    refused({ bars: [{ index: 1, size: 16, bits64: true }] }, 'bars[0].bits64', /even index/);
    refused({ bars: [{ index: 0, size: 16, memory: false, prefetchable: true }] }, 'bars[0]', /I\/O/);
    refused({ bars: [{ index: 1, size: 16 }, { index: 1, size: 32 }] }, 'bars[1].index', /twice/);
    refused({ bars: [{ index: 0, size: 16, bits64: true }, { index: 1, size: 32 }] }, 'bars[1].index', /upper half/);
    refused({ bars: [{ index: 1, size: 32 }, { index: 0, size: 16, bits64: true }] }, 'bars[1].index', /upper half/);
    refused({ bars: [{ index: 0, size: 16, handler: 5 as never }] }, 'bars[0].handler');
    expect(() => planDevice({ ...base, bars: [{ index: 0, size: 16, handler: new MemoryRegion(16) }] })).not.toThrow();
    expect(() => planDevice({ ...base, bars: [{ index: 0, size: 2 ** 40, bits64: true }] })).not.toThrow();
  });

  test('MSI-X in a BAR of its own is added with the table and PBA', () => {
    const plan = planDevice({ ...base, bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 4, bar: 1 } });
    expect(plan.msix).toEqual({ vectors: 4, tableBar: 1, tableOffset: 0, pbaBar: 1, pbaOffset: 64 });
    expect(plan.bars.map((b) => [b.index, b.size])).toEqual([[0, 0x1000], [1, 0x1000]]);
    expect(plan.irqs.msix).toBe(4);
    expect(plan.capabilities.map((c) => c.kind)).toEqual(['msix']);
    const big = planDevice({ ...base, msix: { vectors: 2048, bar: 4 } });
    expect(big.bars).toEqual([expect.objectContaining({ index: 4, size: 0x10000 })]);
  });

  test('migration: true, or save with exactly one of load and loadChunk', () => {
    expect(planDevice(base).migration).toBeUndefined();
    expect(planDevice({ ...base, migration: true }).migration?.save()).toBeUndefined();
    const save = (): undefined => undefined;
    const load = (): void => undefined;
    refused({ migration: { load } as never }, 'migration.save', /required/);
    refused({ migration: { save } }, 'migration', /exactly one of load and loadChunk/);
    refused({ migration: { save, load, loadChunk: load } }, 'migration', /exactly one/);
    refused({ migration: { save, load, preCopy: save } }, 'migration', /preCopy and loadPreCopy go together/);
    refused({ migration: { save, load, version: -1 } }, 'migration.version');
    refused({ migration: { save: 1, load } as never }, 'migration.save', /function/);
  });

  test('MSI-X sharing a described BAR needs explicit, fitting offsets', () => {
    const plan = planDevice({
      ...base,
      bars: [{ index: 0, size: 0x4000 }],
      msix: { vectors: 8, bar: 0, tableOffset: 0x2000, pbaOffset: 0x3000 },
    });
    expect(plan.bars).toHaveLength(1);
    expect(plan.msix).toMatchObject({ tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 });
    refused({ bars: [{ index: 0, size: 0x4000 }], msix: { vectors: 8, bar: 0 } }, 'msix.tableOffset', /required/);
    refused({ msix: { vectors: 2049, bar: 1 } }, 'msix.vectors', /2048/);
    refused({ msix: { vectors: 0, bar: 1 } }, 'msix.vectors');
    refused({ bars: [{ index: 0, size: 0x100 }], msix: { vectors: 16, bar: 0, tableOffset: 0x80 } }, 'msix.tableOffset', /does not fit/);
    refused(
      { bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 16, bar: 0, tableOffset: 0, pbaOffset: 0x1000 } },
      'msix.pbaOffset',
      /does not fit/,
    );
    refused({ bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 16, bar: 0, tableOffset: 0, pbaOffset: 0x80 } }, 'msix.pbaOffset', /overlap/);
    refused({ bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 1, bar: 0, tableOffset: 4 } }, 'msix.tableOffset', /multiple of 8/);
    refused({ bars: [{ index: 0, size: 256, memory: false }], msix: { vectors: 1, bar: 0, tableOffset: 0 } }, 'msix.tableOffset', /memory BAR/);
    refused({ msix: { vectors: 1, bar: 1, pbaBar: 2 } }, 'msix.pbaOffset', /required/);
    refused({ msix: { vectors: 1, bar: 1, pbaBar: 2, pbaOffset: 0 } }, 'msix.pbaOffset', /not described/);
    refused({ bars: [{ index: 0, size: 0x1000, bits64: true }], msix: { vectors: 1, bar: 1, tableOffset: 0 } }, 'msix.tableOffset', /not described/);
  });

  test('capabilities and interrupts', () => {
    const plan = planDevice({
      ...base,
      intx: true,
      pm: true,
      msi: { vectors: 4 },
      pcie: { flr: true },
      vendorCapabilities: [new Uint8Array([1, 2])],
      serialNumber: 0x1234n,
      extendedVendorCapabilities: [{ vsecId: 1, data: new Uint8Array(4) }],
    });
    expect(plan.pciType).toBe(PciType.EXPRESS);
    expect(plan.configSize).toBe(4096);
    expect(plan.irqs).toEqual({ intx: 1, msi: 4, msix: 0 });
    expect(plan.capabilities.map((c) => [c.kind, c.flags])).toEqual([
      ['pm', 0],
      ['msi', 0],
      ['pcie', 0],
      ['vendor', 0],
      ['dsn', CapabilityFlag.EXTENDED],
      ['extended-vendor', CapabilityFlag.EXTENDED],
    ]);
    refused({ pcie: true, pciType: 'conventional' }, 'pcie');
    refused({ serialNumber: 1n }, 'serialNumber', /4 KiB/);
    refused({ pciType: 'pcie' as never }, 'pciType');
    refused({ msi: { vectors: 64 as 32 } }, 'msi.vectors');
    refused({ vendorCapabilities: [new Uint8Array(200), new Uint8Array(60)] }, 'capabilities', /bytes/);
    refused({ dma: { maxMappings: 0 } }, 'dma.maxMappings');
    expect(planDevice({ ...base, dma: false }).dmaMaxMappings).toBe(0);
  });

  test('a non-object description is refused', () => {
    expect(() => planDevice(null as never)).toThrow(DeviceDescriptionError);
  });
});
