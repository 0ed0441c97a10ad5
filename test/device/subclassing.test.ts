/**
 * The library's classes keep their internals out of a subclass's namespace:
 * a device (TypeScript, or plain JS as the CLI serves) may name its own
 * members anything, and the base class still works.
 */
import { PciCommand, PciConfig, PciDevice, RegisterMap, Region } from '../../lib';
import { serveAndConnect } from '../helpers';

// Plain JS, not compiled by ts-jest: required, with the types it exports.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a .js module has no types to import
const fixture = require('../fixtures/shadowing-device') as {
  ShadowingDevice: new () => PciDevice & {
    calls: string[];
    regs: RegisterMap<{ value: { offset: 0; width: 4; rw: true; reset: 0x1234 } }>;
    ram: { buffer: Buffer; reset(): void };
  };
  HELPER_NAMES: string[];
  MAP_HELPER_NAMES: string[];
};

/** Its members have the names PciDevice's helpers had as private methods; it compiles only if those are truly private. */
class NamesakeDevice extends PciDevice {
  readonly log: string[] = [];
  constructor() {
    super({ vendorId: 0x1b36, deviceId: 0x11e2, intx: true, msix: { vectors: 2, bar: 1 } });
  }
  signal(kind: 'msi' | 'msix', vector: number): boolean {
    this.log.push(`signal ${kind} ${vector}`);
    return false;
  }
  checkVector(): void {
    this.log.push('checkVector');
  }
  interruptMode(): string {
    this.log.push('interruptMode');
    return 'none';
  }
  dmaRange(): void {
    this.log.push('dmaRange');
  }
}

describe('subclass members do not collide with the library internals', () => {
  test('a TypeScript subclass with methods named like the helpers still raises interrupts', async () => {
    const device = new NamesakeDevice();
    const { client } = await serveAndConnect(device);
    const [intx] = await client.enableInterrupts('intx');
    expect(device.intx()).toBe(true);
    expect(await intx.wait(1000)).toBe(1);
    const lines = await client.enableInterrupts('msix');
    expect(device.msix(1)).toBe(true);
    expect(await lines[1].wait(1000)).toBe(1);
    expect(device.isMasked('msix', 0)).toBe(false);
    expect(() => device.msix(2)).toThrow(RangeError);
    expect(device.log).toEqual([]);
  });

  test('a plain-JS device whose own properties carry those names still raises interrupts and does DMA', async () => {
    const device = new fixture.ShadowingDevice();
    for (const name of fixture.HELPER_NAMES) {
      expect(Object.prototype.hasOwnProperty.call(device, name)).toBe(true);
    }
    const { client } = await serveAndConnect(device);

    const [intx] = await client.enableInterrupts('intx');
    expect(device.intx()).toBe(true);
    expect(await intx.wait(1000)).toBe(1);
    await client.write16(Region.CONFIG, PciConfig.COMMAND, PciCommand.INTX_DISABLE);
    expect(device.isMasked('intx')).toBe(true);

    const msi = await client.enableInterrupts('msi');
    expect(device.intx()).toBe(false);
    expect(device.msi(1)).toBe(true);
    expect(await msi[1].wait(1000)).toBe(1);
    expect(device.isPending('msi', 1)).toBe(false);

    const msix = await client.enableInterrupts('msix');
    expect(device.msi(0)).toBe(false);
    expect(device.msix(1)).toBe(true);
    expect(await msix[1].wait(1000)).toBe(1);
    expect(() => device.msix(2)).toThrow(RangeError);
    expect(device.capabilityOffset('msix')).toBe(await client.findCapability(0x11));

    const memory = await client.mapDma({ iova: 0x10000, size: 0x1000 });
    device.dma.writeSync(0x10010, Buffer.from('dma'));
    expect(memory.read(0x10010, 3).toString()).toBe('dma');
    expect(device.dma.readSync(0x10010, 3).toString()).toBe('dma');

    expect(device.calls).toEqual([]);
  });

  test('RegisterMap and MemoryRegion subclasses with namesake properties keep working', async () => {
    const device = new fixture.ShadowingDevice();
    for (const name of fixture.MAP_HELPER_NAMES) {
      expect(Object.prototype.hasOwnProperty.call(device.regs, name)).toBe(true);
    }
    const { client } = await serveAndConnect(device);
    expect(await client.read32(0, 0)).toBe(0x1234);
    await client.write32(0, 0, 0xdead0000);
    expect(device.regs.get('value')).toBe(0xdead0000);
    device.regs.setBits('value', 0xbe);
    device.regs.clearBits('value', 0xdead0000);
    expect(await client.read32(0, 0)).toBe(0xbe);
    device.regs.reset();
    expect(device.regs.get('value')).toBe(0x1234);

    await client.writeBar(2, 0, Buffer.from('ram'));
    expect(device.ram.buffer.subarray(0, 3).toString()).toBe('ram');
    device.ram.reset(); // created with clearOnReset: true; its own clearOnReset = false changes nothing
    expect(device.ram.buffer.subarray(0, 3)).toEqual(Buffer.alloc(3));

    expect(device.calls).toEqual([]);
  });
});
