import { DeviceDescriptionError, MemoryRegion, PciDevice, RegisterMap } from '../../lib';
import { serve, serveAndConnect } from '../helpers';

/** Handlers as class fields, given after super(): no thunk in the description. */
class FieldDevice extends PciDevice {
  readonly regs = new RegisterMap({ ctrl: { offset: 0, width: 4, rw: 0xff, reset: 0x100 } });
  readonly ram = new MemoryRegion(0x100);
  constructor() {
    super({ vendorId: 0x1b36, deviceId: 0x0110, bars: [{ index: 0, size: 0x100 }, { index: 2, size: 0x100 }] });
    this.setBarHandler(0, this.regs);
    this.setBarHandler(2, this.ram);
  }
}

describe('BAR handlers given after super()', () => {
  test('serve the BARs like handlers in the description', async () => {
    const device = new FieldDevice();
    const { client } = await serveAndConnect(device);
    await client.write32(0, 0, 0x12);
    expect(await client.read32(0, 0)).toBe(0x112);
    expect(device.regs.get('ctrl')).toBe(0x112);
    await client.writeBar(2, 4, Buffer.from('ram'));
    expect(device.ram.buffer.subarray(4, 7).toString()).toBe('ram');
    await client.reset();
    expect(device.regs.get('ctrl')).toBe(0x100);
  });

  test('the description form (a function returning the handler) still works', async () => {
    class Thunk extends PciDevice {
      readonly ram = new MemoryRegion(16);
      constructor() {
        super({ vendorId: 0x1b36, deviceId: 0x0111, bars: [{ index: 0, size: 16, handler: () => this.ram }] });
      }
    }
    const device = new Thunk();
    const { client } = await serveAndConnect(device);
    await client.write8(0, 3, 7);
    expect(device.ram.buffer[3]).toBe(7);
  });

  test('a wrong BAR, a BAR the description serves, or a non-handler is refused at once', () => {
    const ram = new MemoryRegion(16);
    const device = new PciDevice({
      vendorId: 0x1b36, deviceId: 0x0112,
      bars: [{ index: 0, size: 16 }, { index: 1, size: 16, handler: ram }],
    });
    expect(() => device.setBarHandler(3, ram)).toThrow(new DeviceDescriptionError('bars (BAR 3).handler', 'the device has no BAR 3 (it has 0, 1)'));
    expect(() => device.setBarHandler(1, ram)).toThrow(/already given by the description/);
    expect(() => device.setBarHandler(0, { read: () => {} } as never)).toThrow(/must be an object with read and write methods/);
    const tooWide = new RegisterMap({ far: { offset: 0x20, width: 4 } });
    expect(() => device.setBarHandler(0, tooWide)).toThrow(/registers\.far.*lies outside BAR 0/);
  });

  test('a register map over the MSI-X table is refused', () => {
    const device = new PciDevice({
      vendorId: 0x1b36, deviceId: 0x0113,
      bars: [{ index: 0, size: 0x1000 }], msix: { vectors: 2, bar: 0, tableOffset: 0x800 },
    });
    const regs = new RegisterMap({ clash: { offset: 0x800, width: 4 } });
    expect(() => device.setBarHandler(0, regs)).toThrow(/overlaps the MSI-X table/);
  });

  test('cannot change while served; a later call applies to the next server', async () => {
    const device = new FieldDevice();
    const first = serve(device);
    const other = new MemoryRegion(0x100);
    expect(() => device.setBarHandler(2, other)).toThrow('a BAR handler cannot change while the device is being served');
    await first.close();
    device.setBarHandler(2, other);
    const { client } = await serveAndConnect(device);
    await client.write8(2, 0, 9);
    expect(other.buffer[0]).toBe(9);
    expect(device.ram.buffer[0]).toBe(0);
  });
});
