/**
 * Device-specific config registers as a guest sees them through QEMU: its
 * config cycles at 0x40 reach the device's handler, which QEMU passes
 * through, while the capabilities placed after the range stay in the list;
 * and a live vendor capability, read fresh at every config cycle.
 */
import { PciDevice, RegisterMap } from 'vfio-user';

import { serveInProcess } from './devices/serve';
import { makeTempDir, openSession, PCI_CAP_ID_PM } from './harness';

const PCI_CAP_ID_VNDR = 0x09;
import { describeWithQemu } from './support';

describeWithQemu('QEMU config registers', () => {
  test('config reads and writes at 0x40 reach the device; the PM capability follows the range', async () => {
    const regs = new RegisterMap({
      mode: { offset: 0, width: 4, rw: 0xffff, reset: 0x5a },
      id: { offset: 4, width: 4, reset: 0xfeedf00d },
    });
    const served = serveInProcess(makeTempDir(), () =>
      new PciDevice({ vendorId: 0x1b36, deviceId: 0x0131, pm: true, configRegisters: [{ offset: 0x40, size: 8, handler: regs }] }),
    );
    const { dev } = await openSession({ deviceSocket: served.socketPath });

    expect(await dev.read32(0x40)).toBe(0x5a);
    expect(await dev.read32(0x44)).toBe(0xfeedf00d);
    await dev.write32(0x40, 0x12345678);
    expect(regs.get('mode')).toBe(0x5678);
    expect(await dev.read16(0x40)).toBe(0x5678);
    expect(await dev.findCapability(PCI_CAP_ID_PM)).toBe(0x48);
    expect(served.errors).toEqual([]);
  });

  test('a live vendor capability: in the list, its contents read fresh from the device, its header kept', async () => {
    let ticks = 0;
    const status = new RegisterMap({
      ticks: { offset: 4, width: 4, read: () => ++ticks },
      control: { offset: 8, width: 4, rw: true },
    });
    const served = serveInProcess(makeTempDir(), () =>
      new PciDevice({ vendorId: 0x1b36, deviceId: 0x0132, pm: true, vendorCapabilities: [{ length: 12, handler: status }] }),
    );
    const { dev } = await openSession({ deviceSocket: served.socketPath });

    const found = await dev.findCapability(PCI_CAP_ID_VNDR);
    expect(found).toBeGreaterThanOrEqual(0x40);
    const at = found!;
    expect(await dev.read8(at + 2)).toBe(12);
    const first = await dev.read32(at + 4);
    expect(await dev.read32(at + 4)).toBe(first + 1);
    await dev.write32(at + 8, 0xabcd);
    expect(status.get('control')).toBe(0xabcd);
    expect(await dev.read32(at + 8)).toBe(0xabcd);
    // A guest write to the header changes nothing: the list still leads to PM.
    await dev.write8(at, 0xff);
    expect(await dev.read8(at)).toBe(PCI_CAP_ID_VNDR);
    expect(await dev.findCapability(PCI_CAP_ID_PM)).toBeGreaterThanOrEqual(0x40);
    expect(served.errors).toEqual([]);
  });
});
