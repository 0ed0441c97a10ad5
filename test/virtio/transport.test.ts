import { CapabilityId, PciConfig, Region } from 'vfio-user';
import {
  VIRTIO_MSI_NO_VECTOR,
  VirtioCommonCfg as Cfg,
  VirtioDevice,
  VirtioDeviceType,
  VirtioFeature,
  VirtioIsr,
  VirtioStatus,
} from 'vfio-user/virtio';

import { VirtioRng } from '../../examples/virtio-rng';
import { serveAndConnect } from '../helpers';
import { TestVirtioDriver } from './driver';

const RAM = 0x100000;
const VERSION_1 = 1n << BigInt(VirtioFeature.VERSION_1);

/** A device with 4 bytes of configuration the test changes. */
class ConfigDevice extends VirtioDevice {
  constructor() {
    super({ type: VirtioDeviceType.CONSOLE, queues: 2, configSize: 8, features: 1n << 3n });
    this.config.writeUInt32LE(0xc0ffee, 0);
  }
}

async function start(device: VirtioDevice) {
  const { client, server } = await serveAndConnect(device);
  const memory = await client.mapDma({ iova: RAM, size: 0x40000 });
  return { client, server, driver: await TestVirtioDriver.attach(client, memory) };
}

describe('the modern virtio PCI transport', () => {
  test('identity and capabilities: 1af4:1044 revision 1, four vendor capabilities into BAR0', async () => {
    const { client, driver } = await start(new VirtioRng());
    expect(await client.read16(Region.CONFIG, PciConfig.VENDOR_ID)).toBe(0x1af4);
    expect(await client.read16(Region.CONFIG, PciConfig.DEVICE_ID)).toBe(0x1044);
    expect(await client.read8(Region.CONFIG, PciConfig.REVISION_ID)).toBe(1);
    expect(await client.findCapability(CapabilityId.MSIX)).toBeDefined();
    expect(driver.layout.common).toMatchObject({ bar: 0, offset: 0, length: Cfg.SIZE });
    expect(driver.layout.notify).toMatchObject({ bar: 0, multiplier: 4, length: 4 });
    expect(driver.layout.isr).toMatchObject({ bar: 0, length: 1 });
    expect(driver.layout.device).toBeUndefined(); // virtio-rng has no configuration
    expect(await client.read8(Region.CONFIG, driver.layout.common.capOffset + 2)).toBe(16);
    expect(await client.read8(Region.CONFIG, driver.layout.notify.capOffset + 2)).toBe(20);
  });

  test('feature negotiation: VERSION_1 and ring features offered; FEATURES_OK refused without VERSION_1 or with an unoffered bit', async () => {
    const device = new ConfigDevice();
    const { driver } = await start(device);
    const offered = await driver.deviceFeatures();
    expect(offered & VERSION_1).toBe(VERSION_1);
    expect(offered & (1n << 3n)).toBe(1n << 3n);
    expect(offered & (1n << BigInt(VirtioFeature.RING_EVENT_IDX))).not.toBe(0n);
    expect((await driver.negotiate(1n << 3n)) & VirtioStatus.FEATURES_OK).toBe(0);
    expect((await driver.negotiate(VERSION_1 | (1n << 5n))) & VirtioStatus.FEATURES_OK).toBe(0);
    const status = await driver.negotiate(VERSION_1 | (1n << 3n));
    expect(status).toBe(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
    expect(device.driverFeatures).toBe(VERSION_1 | (1n << 3n));
    expect(device.negotiated(3)).toBe(true);
    // After FEATURES_OK the accepted set is fixed.
    await driver.writeCommon(Cfg.DRIVER_FEATURE_SELECT, 4, 0);
    await driver.writeCommon(Cfg.DRIVER_FEATURE, 4, 0);
    expect(device.driverFeatures).toBe(VERSION_1 | (1n << 3n));
  });

  test('queue registers: sizes, refused vectors read NO_VECTOR, 64-bit addresses; a queue beyond num_queues reads 0', async () => {
    const device = new ConfigDevice();
    const { driver } = await start(device);
    expect(await driver.readCommon(Cfg.NUM_QUEUES, 2)).toBe(2);
    await driver.writeCommon(Cfg.QUEUE_SELECT, 2, 1);
    expect(await driver.readCommon(Cfg.QUEUE_SIZE, 2)).toBe(256);
    expect(await driver.readCommon(Cfg.QUEUE_NOTIFY_OFF, 2)).toBe(1);
    await driver.writeCommon(Cfg.QUEUE_MSIX_VECTOR, 2, 2);
    expect(await driver.readCommon(Cfg.QUEUE_MSIX_VECTOR, 2)).toBe(2);
    await driver.writeCommon(Cfg.QUEUE_MSIX_VECTOR, 2, 3); // the function has 3 vectors: 0 to 2
    expect(await driver.readCommon(Cfg.QUEUE_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
    await driver.writeAddress(Cfg.QUEUE_DESC, 0x1234_5678_9000);
    expect(device.queues[1].descAddress).toBe(0x1234_5678_9000);
    await driver.writeCommon(Cfg.QUEUE_SELECT, 2, 7);
    expect(await driver.readCommon(Cfg.QUEUE_SIZE, 2)).toBe(0);
    await driver.writeCommon(Cfg.QUEUE_SIZE, 2, 8); // ignored
  });

  test('device configuration reads; a change bumps the generation and interrupts by MSI-X config vector', async () => {
    const device = new ConfigDevice();
    const { client, driver } = await start(device);
    const lines = await client.enableInterrupts('msix');
    await driver.bringUp({ queues: 2, msix: true });
    expect((await driver.readDeviceConfig(0, 4)).readUInt32LE()).toBe(0xc0ffee);
    const generation = await driver.readCommon(Cfg.CONFIG_GENERATION, 1);
    device.config.writeUInt32LE(7, 0);
    device.configChanged();
    expect(await lines[0].wait(1000)).toBe(1);
    expect(await driver.readCommon(Cfg.CONFIG_GENERATION, 1)).toBe((generation + 1) & 0xff);
    expect((await driver.readDeviceConfig(0, 4)).readUInt32LE()).toBe(7);
  });

  test('INTx and ISR when MSI-X is off: the config bit, read-to-clear', async () => {
    const device = new ConfigDevice();
    const { client, driver } = await start(device);
    const [intx] = await client.enableInterrupts('intx');
    await driver.bringUp({ queues: 2 });
    device.configChanged();
    expect(await intx.wait(1000)).toBe(1);
    expect(await driver.readIsr()).toBe(VirtioIsr.CONFIG);
    expect(await driver.readIsr()).toBe(0);
  });

  test('reset by writing 0 and by PCI reset: status, features and queues back to their reset values', async () => {
    const device = new ConfigDevice();
    const { client, driver } = await start(device);
    await driver.bringUp({ queues: 2 });
    expect(device.queues[0].enabled).toBe(true);
    await driver.writeCommon(Cfg.DEVICE_STATUS, 1, 0);
    expect(await driver.status()).toBe(0);
    expect(device.queues[0].enabled).toBe(false);
    expect(device.driverFeatures).toBe(0n);
    await driver.bringUp({ queues: 2 });
    await client.reset();
    expect(await driver.status()).toBe(0);
    await driver.writeCommon(Cfg.QUEUE_SELECT, 2, 0);
    expect(await driver.readCommon(Cfg.QUEUE_ENABLE, 2)).toBe(0);
    expect(await driver.readCommon(Cfg.QUEUE_SIZE, 2)).toBe(256);
  });

  test('accesses of any width and offset: a misaligned 2-byte write across two fields, past the end reads 0', async () => {
    const device = new ConfigDevice();
    const { client, driver } = await start(device);
    // Bytes 0x15..0x16: config_generation (read-only) and the low byte of queue_select.
    await client.writeBar(0, Cfg.CONFIG_GENERATION, Buffer.from([0x55, 1]));
    expect(await driver.readCommon(Cfg.QUEUE_SELECT, 2)).toBe(1);
    expect(await client.read32(0, 0x3c)).toBe(0);
    expect(await client.read32(0, 0x1800)).toBe(0);
    await client.write32(0, 0x3ffc, 0); // notify address of no queue
    expect(device.status).toBe(0);
  });
});
