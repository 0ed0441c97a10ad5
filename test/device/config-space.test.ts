import { CapabilityId, Msix, PciConfig, PciDevice, PciExpress, Region } from '../../lib';
import type { VfioUserClient } from '../../lib/client';
import { IDS, REG, TestDevice } from '../fixtures/test-device';
import { rejection, serveAndConnect, u32 } from '../helpers';

const CONFIG = Region.CONFIG;

/** Walks the standard capability list from config space, as a driver does. */
async function capabilityList(client: VfioUserClient): Promise<Array<[number, number]>> {
  const found: Array<[number, number]> = [];
  let at = await client.read8(CONFIG, PciConfig.CAPABILITY_LIST);
  while (at !== 0 && found.length < 48) {
    found.push([at, await client.read8(CONFIG, at)]);
    at = await client.read8(CONFIG, at + 1);
  }
  return found;
}

describe('config space through the client', () => {
  test('identification registers', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect(await client.read16(CONFIG, PciConfig.VENDOR_ID)).toBe(IDS.vendorId);
    expect(await client.read16(CONFIG, PciConfig.DEVICE_ID)).toBe(IDS.deviceId);
    expect(await client.read32(CONFIG, 0)).toBe(((IDS.deviceId << 16) | IDS.vendorId) >>> 0);
    expect(await client.read16(CONFIG, PciConfig.SUBSYSTEM_VENDOR_ID)).toBe(IDS.subsystemVendorId);
    expect(await client.read16(CONFIG, PciConfig.SUBSYSTEM_ID)).toBe(IDS.subsystemId);
    expect(await client.read8(CONFIG, PciConfig.REVISION_ID)).toBe(IDS.revision);
    expect(await client.read32(CONFIG, PciConfig.REVISION_ID)).toBe(((IDS.classCode << 8) | IDS.revision) >>> 0);
    expect(await client.read8(CONFIG, PciConfig.HEADER_TYPE)).toBe(0);
    expect(await client.read8(CONFIG, PciConfig.INTERRUPT_PIN)).toBe(1);
    expect(await client.read16(CONFIG, PciConfig.STATUS) & 0x10).toBe(0x10);
    // Read-only registers ignore writes, and the write still succeeds.
    await client.write32(CONFIG, 0, 0xffffffff);
    expect(await client.read16(CONFIG, PciConfig.VENDOR_ID)).toBe(IDS.vendorId);
    // Odd sizes at odd offsets.
    const three = await client.readConfig(1, 3);
    expect([...three]).toEqual([IDS.vendorId >> 8, IDS.deviceId & 0xff, IDS.deviceId >> 8]);
  });

  test('a device without INTx has interrupt pin 0; defaults', async () => {
    const { client } = await serveAndConnect(new PciDevice({ vendorId: 1, deviceId: 2 }));
    expect(await client.read8(CONFIG, PciConfig.INTERRUPT_PIN)).toBe(0);
    expect(await client.read32(CONFIG, PciConfig.REVISION_ID)).toBe(0xff000000);
    expect((await client.getRegionInfo(CONFIG)).size).toBe(256);
  });

  test('BAR sizing by writing all ones', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    const size = async (offset: number): Promise<number> => {
      await client.write32(CONFIG, offset, 0xffffffff);
      return client.read32(CONFIG, offset);
    };
    expect(await size(0x10)).toBe(0xfffff000); // BAR0: 4 KiB, 32-bit memory
    expect(await size(0x14)).toBe(0xfffff000); // BAR1: MSI-X, 4 KiB
    expect(await size(0x18)).toBe(0xffe0000c); // BAR2: 2 MiB, 64-bit prefetchable
    expect(await size(0x1c)).toBe(0xffffffff); // its upper half
    expect(await size(0x20)).toBe(0xffffff01); // BAR4: 256 bytes of I/O
    expect(await size(0x24)).toBe(0); // BAR5: none
    // Programming an address keeps the flag bits.
    await client.write32(CONFIG, 0x18, 0xfe000000);
    expect(await client.read32(CONFIG, 0x18)).toBe(0xfe00000c);
  });

  test('command register', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    await client.write16(CONFIG, PciConfig.COMMAND, 0xffff);
    const command = await client.read16(CONFIG, PciConfig.COMMAND);
    expect(command & 0x0407).toBe(0x0407);
    await client.write16(CONFIG, PciConfig.COMMAND, 0);
    expect(await client.read16(CONFIG, PciConfig.COMMAND)).toBe(0);
  });

  test('the capability list holds what the description asked for', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const list = await capabilityList(client);
    expect(list.map(([, id]) => id)).toEqual([CapabilityId.PM, CapabilityId.MSI, CapabilityId.MSIX, CapabilityId.EXP, CapabilityId.VENDOR]);
    expect(list.map(([at]) => at)).toEqual(
      (['pm', 'msi', 'msix', 'pcie', 'vendor'] as const).map((kind) => device.capabilityOffset(kind)),
    );
    const vendor = device.capabilityOffset('vendor')!;
    expect([...(await client.readConfig(vendor + 2, 5))]).toEqual([7, 0xde, 0xad, 0xbe, 0xef]);
    const pcie = device.capabilityOffset('pcie')!;
    expect((await client.read16(CONFIG, pcie + PciExpress.FLAGS)) & 0xf).toBe(2);
    expect((await client.getRegionInfo(CONFIG)).size).toBe(4096);
    const dsn = device.capabilityOffset('dsn')!;
    expect(dsn).toBe(0x100);
    expect((await client.read32(CONFIG, dsn)) & 0xffff).toBe(0x0003);
    expect(await client.read64(CONFIG, dsn + 4)).toBe(0x0123456789abcdefn);
  });

  test('MSI-X capability: table and PBA in BAR1', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const cap = device.capabilityOffset('msix')!;
    expect(await client.read16(CONFIG, cap + Msix.FLAGS)).toBe(3);
    expect(await client.read32(CONFIG, cap + Msix.TABLE)).toBe(0x1);
    expect(await client.read32(CONFIG, cap + Msix.PBA)).toBe(0x40 | 0x1);
  });

  test("QEMU's MSI-X restore: a 2-byte write at capability + 3, in one message", async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const cap = device.capabilityOffset('msix')!;
    const tableBefore = await client.read32(CONFIG, cap + Msix.TABLE);
    // High byte of message control (Enable | Function Mask) and, in the same
    // write, the low byte of the read-only table offset/BIR register.
    await client.writeConfig(cap + 3, Buffer.from([0xc0, 0xff]));
    const control = await client.read16(CONFIG, cap + Msix.FLAGS);
    expect(control & Msix.FLAGS_ENABLE).toBe(Msix.FLAGS_ENABLE);
    expect(control & Msix.FLAGS_MASKALL).toBe(Msix.FLAGS_MASKALL);
    expect(control & Msix.FLAGS_QSIZE).toBe(3);
    expect(await client.read32(CONFIG, cap + Msix.TABLE)).toBe(tableBefore);
    // A write over the capability's ID and next pointer is accepted and ignored.
    await client.write16(CONFIG, cap, 0xffff);
    expect(await client.read8(CONFIG, cap)).toBe(CapabilityId.MSIX);
  });

  test('power management state is writable', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const pm = device.capabilityOffset('pm')!;
    await client.write16(CONFIG, pm + 4, 0x3);
    expect((await client.read16(CONFIG, pm + 4)) & 0x3).toBe(3);
  });

  test('a function-level reset through the PCIe capability resets the device', async () => {
    const device = new TestDevice();
    const { client, server } = await serveAndConnect(device);
    const kinds: string[] = [];
    server.on('reset', (kind) => kinds.push(kind));
    await client.write32(0, REG.CTRL, 0x77);
    const pcie = device.capabilityOffset('pcie')!;
    await client.write16(CONFIG, pcie + PciExpress.DEVCTL, PciExpress.DEVCTL_BCR_FLR);
    expect(kinds).toEqual(['flr']);
    expect(device.resets).toEqual(['flr']);
    expect(await client.read32(0, REG.CTRL)).toBe(0x5a00);
  });

  test('the device sees the live config space', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    await client.writeConfig(PciConfig.COMMAND, Buffer.from([0x06]));
    expect(device.configSpace().readUInt16LE(PciConfig.COMMAND)).toBe(0x6);
    expect(() => new TestDevice().configSpace()).toThrow(/not being served/);
  });

  test('accesses past the end of config space fail and the device keeps serving', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect((await rejection(client.readConfig(4096, 4))).code).toBe('EINVAL');
    expect((await rejection(client.readConfig(4094, 4))).code).toBe('EINVAL');
    expect((await rejection(client.writeConfig(4095, u32(0)))).code).toBe('EINVAL');
    expect(await client.read16(CONFIG, 0)).toBe(IDS.vendorId);
  });
});
