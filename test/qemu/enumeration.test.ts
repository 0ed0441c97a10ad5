/**
 * What a guest sees when it enumerates the device: IDs, class, subsystem,
 * BARs and capabilities, through config cycles (both mechanisms) and as
 * QEMU itself reports them over QMP.
 */
import {
  makeTempDir,
  openSession,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_PIN,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './harness';
import { SCRATCHPAD, targets } from './scratchpad';
import { describeWithQemu } from './support';

describeWithQemu('QEMU enumeration', () => {
  describe.each(targets)('$name', (target) => {
    test('IDs, class and subsystem agree through 0xcf8/0xcfc, ECAM and query-pci', async () => {
      const device = await target.start(makeTempDir());
      const { pci, dev, qmpInfo } = await openSession({ deviceSocket: device.socketPath, noSetup: true });

      expect(qmpInfo.id.vendor).toBe(SCRATCHPAD.vendorId);
      expect(qmpInfo.id.device).toBe(SCRATCHPAD.deviceId);
      expect(qmpInfo.id['subsystem-vendor']).toBe(SCRATCHPAD.subsystemVendorId);
      expect(qmpInfo.id.subsystem).toBe(SCRATCHPAD.subsystemId);
      expect(qmpInfo.class_info.class).toBe(SCRATCHPAD.classCode >> 8);
      expect(qmpInfo.irq_pin).toBe(SCRATCHPAD.intxPin);

      // The whole bus, walked the way firmware does, finds the device where QMP says.
      const found = (await pci.scan(0)).filter((f) => f.vendorId === SCRATCHPAD.vendorId && f.deviceId === SCRATCHPAD.deviceId);
      expect(found).toEqual([expect.objectContaining({ bus: 0, slot: qmpInfo.slot, fn: qmpInfo.function })]);

      for (const [label, read] of [
        ['0xcf8/0xcfc', (off: number, size: 1 | 2 | 4) => pci.ioRead(dev.address, off, size)],
        ['ECAM', (off: number, size: 1 | 2 | 4) => pci.ecamRead(dev.address, off, size)],
      ] as const) {
        const seen = {
          via: label,
          ids: await read(PCI_VENDOR_ID, 4),
          vendor: await read(PCI_VENDOR_ID, 2),
          device: await read(PCI_DEVICE_ID, 2),
          classCode: (await read(PCI_CLASS_PROG - 1, 4)) >>> 8,
          subsystem: await read(PCI_SUBSYSTEM_VENDOR_ID, 4),
          subsystemId: await read(PCI_SUBSYSTEM_ID, 2),
          pin: await read(PCI_INTERRUPT_PIN, 1),
        };
        expect(seen).toEqual({
          via: label,
          ids: ((SCRATCHPAD.deviceId << 16) | SCRATCHPAD.vendorId) >>> 0,
          vendor: SCRATCHPAD.vendorId,
          device: SCRATCHPAD.deviceId,
          classCode: SCRATCHPAD.classCode,
          subsystem: ((SCRATCHPAD.subsystemId << 16) | SCRATCHPAD.subsystemVendorId) >>> 0,
          subsystemId: SCRATCHPAD.subsystemId,
          pin: SCRATCHPAD.intxPin,
        });
      }
    });

    test('BAR sizes: config-cycle sizing, QEMU report and assigned addresses agree', async () => {
      const device = await target.start(makeTempDir());
      const { qemu, dev, qmpInfo } = await openSession({ deviceSocket: device.socketPath, noSetup: true });

      // Before assignment QEMU knows the sizes but no addresses.
      expect(qmpInfo.regions.map((r) => ({ bar: r.bar, type: r.type, size: r.size }))).toEqual(
        SCRATCHPAD.bars.map((b) => ({ bar: b.index, type: b.kind, size: b.size })),
      );
      expect(await dev.sizeBars()).toEqual(SCRATCHPAD.bars);

      const assigned = await dev.assignBars();
      await dev.enable();
      const command = await dev.read16(PCI_COMMAND);
      expect(command & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)).toBe(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

      const after = (await qemu.qmp.queryPci()).find((d) => d.qdev_id === 'vfu0');
      expect(after?.regions.map((r) => ({ bar: r.bar, address: r.address, size: r.size }))).toEqual(
        [...assigned.values()].map((b) => ({ bar: b.index, address: b.address, size: b.size })),
      );
      // Memory BARs in the memory window, the I/O BAR in the I/O window, each aligned to its size.
      for (const bar of assigned.values()) {
        expect(bar.address % bar.size).toBe(0);
        expect(bar.address).toBeGreaterThanOrEqual(bar.kind === 'memory' ? 0xe0000000 : 0xc000);
      }
    });

    test('capability lists: standard ones in order, the serial number in extended space', async () => {
      const device = await target.start(makeTempDir());
      const { dev } = await openSession({ deviceSocket: device.socketPath, noSetup: true });

      expect(await dev.read8(PCI_CAPABILITY_LIST)).not.toBe(0);
      const caps = await dev.capabilities();
      expect(caps.map((c) => c.id)).toEqual([...SCRATCHPAD.capabilities]);

      const extended = await dev.extendedCapabilities();
      const dsn = extended.find((c) => c.id === SCRATCHPAD.dsn.id);
      expect(dsn).toBeDefined();
      const serial = (BigInt(await dev.read32(dsn!.offset + 8)) << 32n) | BigInt(await dev.read32(dsn!.offset + 4));
      expect(serial).toBe(SCRATCHPAD.dsn.serial);

      // PM version 3 (PCI PM 1.2); MSI with 4 vectors, 64-bit addresses and per-vector masks;
      // PCI Express version 2 with function-level reset; the vendor bytes.
      const at = (id: number): number => caps.find((c) => c.id === id)!.offset;
      expect((await dev.read16(at(0x01) + 2)) & 0x7).toBe(3);
      const msiFlags = await dev.read16(at(0x05) + 2);
      expect({ vectors: 1 << ((msiFlags >> 1) & 7), is64: (msiFlags & 0x80) !== 0, perVectorMask: (msiFlags & 0x100) !== 0 }).toEqual({
        vectors: SCRATCHPAD.msi.vectors,
        is64: true,
        perVectorMask: true,
      });
      const pcie = at(0x10);
      // (QEMU shows the device type as a root complex integrated endpoint: it sits on q35's root bus.)
      expect((await dev.read16(pcie + 2)) & 0xf).toBe(2);
      expect((await dev.read32(pcie + 4)) & (1 << 28)).toBe(1 << 28);
      const vendor = at(0x09);
      const vendorLength = await dev.read8(vendor + 2);
      const vendorData = Buffer.alloc(vendorLength - 3);
      for (let i = 0; i < vendorData.length; i++) {
        vendorData[i] = await dev.read8(vendor + 3 + i);
      }
      expect(vendorData.toString('latin1')).toBe(SCRATCHPAD.vendorData);

      // MSI-X points where the card says its table and PBA are.
      const msix = caps.find((c) => c.id === 0x11)!.offset;
      const flags = await dev.read16(msix + 2);
      expect((flags & 0x7ff) + 1).toBe(SCRATCHPAD.msix.vectors);
      expect(await dev.read32(msix + 4)).toBe(SCRATCHPAD.msix.tableOffset | SCRATCHPAD.msix.tableBar);
      expect(await dev.read32(msix + 8)).toBe(SCRATCHPAD.msix.pbaOffset | SCRATCHPAD.msix.pbaBar);
    });
  });
});
