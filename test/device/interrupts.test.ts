import { Msi, Msix, PciCommand, PciConfig, PciDevice, PciStatus, Region } from '../../lib';
import type { VfioUserClient } from '../../lib/client';
import { TestDevice } from '../fixtures/test-device';
import { rejection, serveAndConnect } from '../helpers';

const CONFIG = Region.CONFIG;
const MSIX_BAR = 1;

async function enableMsix(client: VfioUserClient, device: TestDevice, control: number = Msix.FLAGS_ENABLE): Promise<number> {
  const cap = device.capabilityOffset('msix')!;
  await client.write16(CONFIG, cap + Msix.FLAGS, control);
  return cap;
}

/** Writes the vector control word of MSI-X table entry `vector`. */
function setEntryMask(client: VfioUserClient, vector: number, masked: boolean): Promise<void> {
  return client.write32(MSIX_BAR, vector * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL, masked ? 1 : 0);
}

describe('interrupts reach the client', () => {
  test('INTx', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    expect(device.intx()).toBe(false); // no eventfd yet
    const [line] = await client.enableInterrupts('intx');
    expect(device.intx()).toBe(true);
    expect(await line.wait(1000)).toBe(1);
    expect(line.take()).toBe(0);
    expect(device.isMasked('intx')).toBe(false);
  });

  test('INTx shows in Status until the client unmasks it after the guest\'s end of interrupt', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const [line] = await client.enableInterrupts('intx');
    const status = async (): Promise<number> => (await client.read16(CONFIG, PciConfig.STATUS)) & PciStatus.INTERRUPT;
    expect(await status()).toBe(0);
    expect(device.intx()).toBe(true);
    expect(await line.wait(1000)).toBe(1);
    expect(await status()).toBe(PciStatus.INTERRUPT);
    await client.unmaskInterrupts('intx');
    expect(await status()).toBe(0);
  });

  test('INTx is held while Interrupt Disable is set and goes out once when the driver clears it', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const [line] = await client.enableInterrupts('intx');
    await client.write16(CONFIG, PciConfig.COMMAND, PciCommand.INTX_DISABLE);
    expect(device.isMasked('intx')).toBe(true);
    expect(device.intx()).toBe(true);
    expect((await rejection(line.wait(100))).code).toBe('ETIMEDOUT');
    expect((await client.read16(CONFIG, PciConfig.STATUS)) & PciStatus.INTERRUPT).toBe(PciStatus.INTERRUPT);
    await client.write16(CONFIG, PciConfig.COMMAND, 0);
    expect(await line.wait(1000)).toBe(1);
    await client.write16(CONFIG, PciConfig.COMMAND, 0);
    expect((await rejection(line.wait(100))).code).toBe('ETIMEDOUT');
  });

  test('INTx is refused by a device that did not describe it', () => {
    const device = new PciDevice({ vendorId: 1, deviceId: 2 });
    expect(() => device.intx()).toThrow(/intx/);
  });

  test('MSI: each vector has its eventfd; masked vectors are held pending', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const cap = device.capabilityOffset('msi')!;
    expect(await client.getIrqInfo('msi')).toMatchObject({ count: 4 });
    const lines = await client.enableInterrupts('msi');
    expect(lines.map((l) => l.vector)).toEqual([0, 1, 2, 3]);
    await client.write16(CONFIG, cap + Msi.FLAGS, Msi.FLAGS_ENABLE | (2 << 4));
    expect(device.msi(2)).toBe(true);
    expect(await lines[2].wait(1000)).toBe(1);
    expect(lines[1].take()).toBe(0);

    // Per-vector mask bit 1 (64-bit capability: mask at +16, pending at +20).
    await client.write32(CONFIG, cap + Msi.MASK_64, 0x2);
    expect(device.isMasked('msi', 1)).toBe(true);
    expect(device.msi(1)).toBe(true);
    expect(lines[1].take()).toBe(0);
    expect(device.isPending('msi', 1)).toBe(true);
    expect((await client.read32(CONFIG, cap + Msi.PENDING_64)) & 0x2).toBe(0x2);
    await client.write32(CONFIG, cap + Msi.MASK_64, 0);
    expect(await lines[1].wait(1000)).toBe(1);
    expect(device.isPending('msi', 1)).toBe(false);

    expect(() => device.msi(4)).toThrow(RangeError);
  });

  test('MSI-X: delivery, per-vector mask with the PBA, delivered on unmask', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const lines = await client.enableInterrupts('msix');
    expect(lines).toHaveLength(4);
    await enableMsix(client, device);
    expect(device.msix(3)).toBe(true);
    expect(await lines[3].wait(1000)).toBe(1);

    await setEntryMask(client, 0, true);
    expect(device.isMasked('msix', 0)).toBe(true);
    expect(device.msix(0)).toBe(true);
    expect(lines[0].take()).toBe(0);
    expect(device.isPending('msix', 0)).toBe(true);
    const pba = 4 * Msix.ENTRY_SIZE; // right after the 4-entry table
    expect(Number(await client.read64(MSIX_BAR, pba))).toBe(0x1);

    const delivered = lines[0].wait(1000);
    await setEntryMask(client, 0, false);
    expect(await delivered).toBe(1);
    expect(device.isPending('msix', 0)).toBe(false);
    expect(Number(await client.read64(MSIX_BAR, pba))).toBe(0);
  });

  test('MSI-X: the function mask holds every vector', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const lines = await client.enableInterrupts('msix');
    const cap = await enableMsix(client, device, Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL);
    expect(device.isMasked('msix', 2)).toBe(true);
    device.msix(1);
    device.msix(2);
    expect(lines[1].take() + lines[2].take()).toBe(0);
    await client.write16(CONFIG, cap + Msix.FLAGS, Msix.FLAGS_ENABLE);
    expect(await lines[1].wait(1000)).toBe(1);
    expect(await lines[2].wait(1000)).toBe(1);
  });

  test('MSI-X: a device does not raise MSI-X while the driver has it disabled', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    // With INTx the function's mode, vfu_irq_trigger would signal its eventfd.
    const [intx] = await client.enableInterrupts('intx');
    const [line] = await client.enableInterrupts('msix', { count: 1, configure: false });
    expect(device.msix(0)).toBe(false);
    expect(device.isPending('msix', 0)).toBe(false);
    expect(intx.take()).toBe(0);
    await enableMsix(client, device);
    expect((await rejection(line.wait(50))).code).toBe('ETIMEDOUT');
    expect(device.msix(0)).toBe(true);
    expect(await line.wait(1000)).toBe(1);
  });

  test('each kind is raised only in its own interrupt mode', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const [line] = await client.enableInterrupts('intx');
    const msi = await client.enableInterrupts('msi', { configure: false });
    const msix = await client.enableInterrupts('msix', { configure: false });
    expect(device.msi(0)).toBe(false);
    expect(device.msix(0)).toBe(false);
    expect(device.intx()).toBe(true);
    expect(await line.wait(1000)).toBe(1);

    const msiCap = device.capabilityOffset('msi')!;
    await client.write16(CONFIG, msiCap + Msi.FLAGS, Msi.FLAGS_ENABLE);
    expect(device.intx()).toBe(false);
    expect(device.msix(0)).toBe(false);
    expect(device.msi(0)).toBe(true);
    expect(await msi[0].wait(1000)).toBe(1);

    await enableMsix(client, device); // MSI-X wins while both are enabled
    expect(device.intx()).toBe(false);
    expect(device.msi(0)).toBe(false);
    expect(device.msix(0)).toBe(true);
    expect(await msix[0].wait(1000)).toBe(1);
    expect(line.take() + msi[0].take()).toBe(0);
  });

  test('enableInterrupts turns the type on in config space, as a driver does', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    expect(await client.findCapability(0x11)).toBe(device.capabilityOffset('msix'));
    expect(await client.findCapability(0x05)).toBe(device.capabilityOffset('msi'));
    expect(await client.findCapability(0x42)).toBeUndefined();
    const msix = device.capabilityOffset('msix')!;
    await client.write16(CONFIG, msix + Msix.FLAGS, Msix.FLAGS_MASKALL);
    const [x] = await client.enableInterrupts('msix', { count: 1 });
    expect((await client.read16(CONFIG, msix + Msix.FLAGS)) & 0xc000).toBe(Msix.FLAGS_ENABLE);
    device.msix(0);
    expect(await x.wait(1000)).toBe(1);
    await client.write16(CONFIG, msix + Msix.FLAGS, 0);
    const msi = device.capabilityOffset('msi')!;
    await client.enableInterrupts('msi', { count: 3 });
    expect(await client.read16(CONFIG, msi + Msi.FLAGS)).toBe(Msi.FLAGS_ENABLE | (2 << 1) | (2 << 4) | Msi.FLAGS_64BIT | Msi.FLAGS_MASKBIT);
    await client.write16(CONFIG, PciConfig.COMMAND, PciCommand.INTX_DISABLE);
    await client.enableInterrupts('intx');
    expect(await client.read16(CONFIG, PciConfig.COMMAND)).toBe(0);
  });

  test('MSI-X table entries read back what the client wrote', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    await client.writeBar(MSIX_BAR, 16, Buffer.from([0x00, 0x10, 0xe0, 0xfe, 0, 0, 0, 0, 0x41, 0, 0, 0, 1, 0, 0, 0]));
    expect(await client.read32(MSIX_BAR, 16)).toBe(0xfee01000);
    expect(await client.read32(MSIX_BAR, 24)).toBe(0x41);
    expect(await client.read32(MSIX_BAR, 28)).toBe(1);
  });

  test('SET_IRQS mask and unmask: the device is told, pending vectors are delivered', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const lines = await client.enableInterrupts('msix');
    await enableMsix(client, device);
    await client.maskInterrupts('msix', 1, 2);
    expect(device.maskEvents).toEqual([['msix', 1, 2, true]]);
    expect(device.isMasked('msix', 1)).toBe(true);
    expect(device.isMasked('msix', 2)).toBe(true);
    expect(device.isMasked('msix', 3)).toBe(false);
    device.msix(2);
    expect(lines[2].take()).toBe(0);
    await client.unmaskInterrupts('msix', 1, 2);
    expect(device.maskEvents[1]).toEqual(['msix', 1, 2, false]);
    expect(await lines[2].wait(1000)).toBe(1);
  });

  test('a client can trigger vectors itself', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const lines = await client.enableInterrupts('msix');
    await enableMsix(client, device);
    await client.triggerInterrupts('msix', 1, 1);
    expect(await lines[1].wait(1000)).toBe(1);
  });

  test('without eventfds an interrupt goes nowhere; disabling removes them', async () => {
    const device = new TestDevice();
    expect(device.msix(0)).toBe(false); // not served
    const { client } = await serveAndConnect(device);
    expect(device.msix(0)).toBe(false);
    const [line] = await client.enableInterrupts('msix', { start: 0, count: 1 });
    await enableMsix(client, device);
    expect(device.msix(1)).toBe(false);
    expect(device.msix(0)).toBe(true);
    expect(await line.wait(1000)).toBe(1);
    await client.disableInterrupts('msix');
    expect(device.msix(0)).toBe(false);
    expect((await rejection(line.wait(10))).code).toBe('EBADF');
  });

  test('waiting for an interrupt that does not come times out', async () => {
    const device = new TestDevice();
    const { client } = await serveAndConnect(device);
    const [line] = await client.enableInterrupts('msix', { count: 1 });
    const err = await rejection(line.wait(50));
    expect(err.name).toBe('TimeoutError');
    expect(err.code).toBe('ETIMEDOUT');
  });

  test('more eventfds than one message may carry are sent in several', async () => {
    class Wide extends PciDevice {
      constructor() {
        super({ vendorId: 1, deviceId: 2, msix: { vectors: 40, bar: 0 } });
      }
    }
    const device = new Wide();
    const { client } = await serveAndConnect(device);
    expect(client.serverCapabilities.maxMsgFds).toBeLessThan(40);
    const lines = await client.enableInterrupts('msix');
    expect(lines).toHaveLength(40);
    await client.write16(CONFIG, device.capabilityOffset('msix')! + Msix.FLAGS, Msix.FLAGS_ENABLE);
    expect(device.msix(39)).toBe(true);
    expect(await lines[39].wait(1000)).toBe(1);
  });
});
