/**
 * The scenario this project started from, end to end: a device with MSI-X
 * enabled, one vector unmasked and state in its BARs is migrated by the
 * client from server A to server B, and the client replays QEMU's
 * config-space restore, including the 2-byte write at MSI-X capability + 3
 * with Enable and Function Mask set. B must then be A.
 */
import { Msix, PciConfig, PciCommand, Region } from '../../lib';
import { migrate, type VfioUserClient } from '../../lib/client';
import { MigratableDevice, MREG } from '../fixtures/migratable-device';
import { connect, serve } from '../helpers';

const MSIX_BAR = 1;

function entryControl(vector: number): number {
  return vector * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL;
}

async function setUpSource(client: VfioUserClient, device: MigratableDevice): Promise<void> {
  await client.write16(Region.CONFIG, PciConfig.COMMAND, PciCommand.MEMORY | PciCommand.MASTER);
  await client.write32(Region.CONFIG, PciConfig.BASE_ADDRESS_0, 0xfebf0000);
  // Every vector masked in the table but vector 2, whose entry is programmed.
  for (let v = 0; v < 4; v++) {
    await client.write32(MSIX_BAR, entryControl(v), v === 2 ? 0 : 1);
  }
  await client.write32(MSIX_BAR, 2 * Msix.ENTRY_SIZE, 0xfee00000);
  await client.write32(MSIX_BAR, 2 * Msix.ENTRY_SIZE + 8, 0x4049);
  await client.enableInterrupts('msix');
  // Register and RAM state, and the device's own.
  await client.write32(0, MREG.VALUE, 0xdeadbeef);
  await client.write32(0, MREG.CTRL, 0x11);
  device.regs.setBits('status', 0x5);
  await client.writeBar(2, 0x1000, Buffer.from('state in a BAR'));
  device.counter = 41;
  device.blob = Buffer.from('the device keeps this');
  // Vector 1 is masked: raising it leaves its PBA bit set.
  expect(device.msix(1)).toBe(true);
  expect(device.isPending('msix', 1)).toBe(true);
}

test('a device migrated from A to B is the same device, and B interrupts the client', async () => {
  const a = new MigratableDevice();
  const b = new MigratableDevice();
  const serverA = serve(a);
  const serverB = serve(b);
  const clientA = await connect(serverA);
  const clientB = await connect(serverB);
  await setUpSource(clientA, a);
  const configA = await clientA.readConfig(0, 256);
  const tableA = await clientA.readBar(MSIX_BAR, 0, 4 * Msix.ENTRY_SIZE);
  const cap = a.capabilityOffset('msix')!;
  const pbaOffset = configA.readUInt32LE(cap + 8) & ~7;
  const pbaA = await clientA.readBar(MSIX_BAR, pbaOffset, 8);
  expect(pbaA[0]).toBe(0x2);

  const writes: Array<[number, number]> = [];
  const write = clientB.writeRegion.bind(clientB);
  clientB.writeRegion = async (region, offset, data) => {
    if (region === Region.CONFIG && offset === cap + 3) {
      writes.push([data.length, data[0]]);
    }
    return write(region, offset, data);
  };

  const result = await migrate(clientA, clientB);
  expect(result.stopCopyBytes).toBeGreaterThan(0);
  expect(await clientA.getMigrationState()).toBe('stop');
  expect(await clientB.getMigrationState()).toBe('running');
  expect(a.migrationState).toBe('stop');
  expect(b.migrationState).toBe('running');

  // QEMU's restore: 2-byte writes at cap + 3, first Enable and Function Mask.
  expect(writes[0]).toEqual([2, (Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL) >> 8]);
  expect(writes[writes.length - 1]).toEqual([2, Msix.FLAGS_ENABLE >> 8]);

  // Config space: MSI-X enabled, function unmasked, BAR and command as on A.
  const configB = await clientB.readConfig(0, 256);
  expect(configB.readUInt16LE(cap + Msix.FLAGS) & (Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL)).toBe(Msix.FLAGS_ENABLE);
  expect(configB).toEqual(configA);

  // The table, the PBA and the masks.
  expect(await clientB.readBar(MSIX_BAR, 0, 4 * Msix.ENTRY_SIZE)).toEqual(tableA);
  expect(await clientB.readBar(MSIX_BAR, pbaOffset, 8)).toEqual(pbaA);
  for (let v = 0; v < 4; v++) {
    expect(b.isMasked('msix', v)).toBe(v !== 2);
  }
  expect(b.isPending('msix', 1)).toBe(true);

  // BAR contents and the device's own state.
  expect(await clientB.read32(0, MREG.VALUE)).toBe(0xdeadbeef);
  expect(await clientB.read32(0, MREG.CTRL)).toBe(0x11);
  expect(b.regs.get('status')).toBe(0x5);
  expect((await clientB.readBar(2, 0x1000, 14)).toString()).toBe('state in a BAR');
  expect(b.counter).toBe(41);
  expect(b.blob.toString()).toBe('the device keeps this');

  // An interrupt raised on B reaches the client's eventfd; masked vector 1 does not.
  const lines = result.interrupts;
  expect(lines.map((l) => l.vector)).toEqual([0, 1, 2, 3]);
  expect(b.msix(2)).toBe(true);
  expect(await lines[2].wait(1000)).toBe(1);
  expect(lines[1].take()).toBe(0);
});
