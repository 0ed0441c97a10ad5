/**
 * A device stopped for migration changes nothing a client sees: its
 * interrupts are held and delivered when it runs again, its DMA throws; and
 * what it wrote by DMA while running shows in the client's dirty-page log.
 * A migration cut short by the client leaving leaves the source running.
 */
import { DeviceStoppedError, Region } from '../../lib';
import { migrate } from '../../lib/client';
import { MigratableDevice, PAGE } from '../fixtures/migratable-device';
import { connect, rejection, serve, serveAndConnect, until } from '../helpers';

const IOVA = 0x100000;

describe('while stopped', () => {
  test('MSI-X raised while stopped is held, then delivered on resume', async () => {
    const device = new MigratableDevice();
    const { client } = await serveAndConnect(device);
    const lines = await client.enableInterrupts('msix');
    await client.setMigrationState('stop');
    expect(device.msix(3)).toBe(true);
    expect(device.isPending('msix', 3)).toBe(true);
    // A round trip: the server has handled everything before it, and a
    // delivered interrupt would already be counted in its eventfd.
    await client.read16(Region.CONFIG, 0);
    expect(lines[3].take()).toBe(0);
    await client.setMigrationState('running');
    expect(await lines[3].wait(1000)).toBe(1);
    expect(device.isPending('msix', 3)).toBe(false);
  });

  test('an interrupt held on the source is delivered by the destination', async () => {
    const a = new MigratableDevice();
    const b = new MigratableDevice();
    const clientA = await connect(serve(a));
    await clientA.enableInterrupts('msix');
    await clientA.setMigrationState('stop');
    expect(a.msix(0)).toBe(true);
    await clientA.setMigrationState('running');
    await clientA.setMigrationState('stop');
    expect(a.msix(2)).toBe(true);
    const result = await migrate(clientA, await connect(serve(b)));
    expect(await result.interrupts[2].wait(1000)).toBe(1);
    expect(result.interrupts[0].take()).toBe(0);
  });

  test('DMA throws DeviceStoppedError; onStop may still finish a transfer', async () => {
    const device = new MigratableDevice();
    const { client } = await serveAndConnect(device);
    const memory = await client.mapDma({ iova: IOVA, size: 4 * PAGE });
    device.startTransfer(IOVA, 4 * PAGE, 0xab);
    const finishInOnStop = jest.spyOn(device, 'onStop').mockImplementation(() => {
      while (device.step());
    });
    await client.setMigrationState('stop');
    expect(finishInOnStop).toHaveBeenCalled();
    expect(memory.read(IOVA + 3 * PAGE, 1)[0]).toBe(0xab);
    const err = await rejection(Promise.resolve().then(() => device.dma.writeSync(IOVA, Buffer.alloc(1))));
    expect(err).toBeInstanceOf(DeviceStoppedError);
    expect(err).toMatchObject({ code: 'EBUSY', state: 'stop' });
    expect(() => device.dma.readSync(IOVA, 1)).toThrow(DeviceStoppedError);
    expect(() => device.dma.view(IOVA, 1)).toThrow(DeviceStoppedError);
    await expect(device.dma.read(IOVA, 1)).rejects.toBeInstanceOf(DeviceStoppedError);
    await expect(device.dma.write(IOVA, Buffer.alloc(1))).rejects.toBeInstanceOf(DeviceStoppedError);
    await client.setMigrationState('running');
    expect(device.dma.readSync(IOVA, 1)[0]).toBe(0xab);
  });

  test('a transfer in flight at the stop is saved and finished on the destination', async () => {
    const a = new MigratableDevice();
    const b = new MigratableDevice();
    const clientA = await connect(serve(a));
    const clientB = await connect(serve(b));
    const memA = await clientA.mapDma({ iova: IOVA, size: 4 * PAGE });
    const memB = await clientB.mapDma({ iova: IOVA, size: 4 * PAGE });
    a.startTransfer(IOVA, 4 * PAGE, 0x5c);
    a.step();
    a.step();
    await migrate(clientA, clientB);
    expect(b.transfer).toEqual({ iova: IOVA, length: 4 * PAGE, pattern: 0x5c, done: 2 * PAGE });
    // Guest RAM moves separately (the VMM copies it): here, the pages A wrote.
    memB.write(IOVA, memA.read(IOVA, 2 * PAGE));
    while (b.step());
    expect(memB.read(IOVA, 4 * PAGE).equals(Buffer.alloc(4 * PAGE, 0x5c))).toBe(true);
  });
});

describe('dirty-page logging', () => {
  test('pages the device writes by DMA are reported dirty, once', async () => {
    const device = new MigratableDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: IOVA, size: 8 * PAGE });
    expect(await client.startDirtyLogging({ pageSize: PAGE })).toBe(PAGE);
    device.dma.writeSync(IOVA + PAGE + 10, Buffer.alloc(4, 1));
    device.dma.writeSync(IOVA + 5 * PAGE - 2, Buffer.alloc(4, 1)); // pages 4 and 5
    const report = await client.dirtyPages(IOVA, 8 * PAGE, PAGE);
    expect(report.pages).toEqual([IOVA + PAGE, IOVA + 4 * PAGE, IOVA + 5 * PAGE]);
    expect(report.bitmap.length).toBe(8);
    expect((await client.dirtyPages(IOVA, 8 * PAGE, PAGE)).pages).toEqual([]);
    await client.stopDirtyLogging();
    expect((await rejection(client.dirtyPages(IOVA, 8 * PAGE, PAGE))).code).toBe('EINVAL');
  });

  test('a transfer shows its progress in the log', async () => {
    const device = new MigratableDevice();
    const { client } = await serveAndConnect(device);
    await client.mapDma({ iova: IOVA, size: 4 * PAGE });
    await client.startDirtyLogging();
    device.startTransfer(IOVA, 4 * PAGE, 1);
    device.step();
    device.step();
    expect((await client.dirtyPages(IOVA, 4 * PAGE)).pages).toEqual([IOVA, IOVA + PAGE]);
    device.step();
    expect((await client.dirtyPages(IOVA, 4 * PAGE)).pages).toEqual([IOVA + 2 * PAGE]);
  });
});

describe('an interrupted migration', () => {
  test('the source runs again when the client leaves mid-copy, and serves the next client', async () => {
    const device = new MigratableDevice({ blobSize: 2 * 1024 * 1024 });
    const server = serve(device);
    const steps: string[] = [];
    server.on('migration', (state, previous) => steps.push(`${previous}->${state}`));
    const client = await connect(server);
    await client.enableInterrupts('msix');
    await client.write32(0, 4, 0xcafe);
    await client.setMigrationState('stop-copy');
    await client.readMigrationData(4096);
    expect(device.msix(0)).toBe(true); // held
    await client.close();
    await until(() => device.migrationState === 'running');
    expect(steps).toEqual(['running->stop', 'stop->stop-copy', 'stop-copy->running']);
    expect(device.events).toEqual(['stop', 'resume']);

    const next = await connect(server);
    expect(await next.getMigrationState()).toBe('running');
    expect(await next.read32(0, 4)).toBe(0xcafe);
    const lines = await next.enableInterrupts('msix');
    expect(device.msix(1)).toBe(true);
    expect(await lines[1].wait(1000)).toBe(1);
    // And it can be migrated from the start again.
    await next.setMigrationState('stop-copy');
    const first = await next.readMigrationData(16);
    expect(first.subarray(0, 8).toString('latin1')).toBe('VFUMIGR\0');
  });

  test('a destination abandoned while resuming runs with its own state', async () => {
    const device = new MigratableDevice();
    device.counter = 3;
    const server = serve(device);
    const client = await connect(server);
    await client.setMigrationState('resuming');
    await client.writeMigrationData(Buffer.from('VFUMIGR\0'));
    await client.close();
    await until(() => device.migrationState === 'running');
    const next = await connect(server);
    expect(await next.getMigrationState()).toBe('running');
    expect(device.counter).toBe(3);
  });
});
