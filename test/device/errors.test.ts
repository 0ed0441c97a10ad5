import { PciDevice, Region, VfioUserError } from '../../lib';
import { Command, type VfioUserClient } from '../../lib/client';
import { REG, TestDevice } from '../fixtures/test-device';
import { nextEvent, regionAccess, rejection, serveAndConnect, u32 } from '../helpers';

async function stillServes(client: VfioUserClient): Promise<void> {
  expect(await client.read32(0, REG.ID)).toBe(0x12345678);
}

describe('bad input from the client gets errno replies; the device keeps serving', () => {
  test('out-of-range offsets and regions', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    expect((await rejection(client.readBar(0, 0x1000, 4))).code).toBe('EINVAL');
    expect((await rejection(client.readBar(0, 0xffe, 4))).code).toBe('EINVAL');
    expect((await rejection(client.writeBar(0, 0x1000, u32(1)))).code).toBe('EINVAL');
    expect((await rejection(client.readRegion(9, 0, 4))).code).toBe('EINVAL');
    expect((await rejection(client.readBar(5, 0, 4))).code).toBe('EINVAL'); // BAR5 does not exist
    expect((await rejection(client.request(Command.REGION_READ, regionAccess(0, 0xffffffffffffffffn, 4)))).code).toBe('EINVAL');
    await stillServes(client);
  });

  test('wrong sizes and malformed messages', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    // The count says 8 bytes, 4 come.
    expect((await rejection(client.request(Command.REGION_WRITE, regionAccess(0, 0n, 8, u32(1))))).code).toBe('EINVAL');
    // Shorter than the access header.
    expect((await rejection(client.request(Command.REGION_READ, Buffer.alloc(8)))).code).toBe('EINVAL');
    // More than the 1 MiB a message may carry.
    expect((await rejection(client.request(Command.REGION_READ, regionAccess(2, 0n, (1 << 20) + 1)))).code).toBe('EINVAL');
    // No payload at all, and unknown commands.
    expect((await rejection(client.request(Command.DEVICE_GET_INFO))).code).toBe('EINVAL');
    expect((await rejection(client.request(99, Buffer.alloc(4)))).code).toBe('EINVAL');
    expect((await rejection(client.request(Command.VERSION, Buffer.alloc(4)))).code).toBe('EINVAL');
    // SET_IRQS for a vector that does not exist, or an IRQ type that does not.
    expect((await rejection(client.enableInterrupts('msix', { start: 4, count: 1 }))).code).toBe('EINVAL');
    expect((await rejection(client.getIrqInfo(7))).code).toBe('EINVAL');
    // Region info for a region that does not exist.
    expect((await rejection(client.getRegionInfo(42))).code).toBe('EINVAL');
    await stillServes(client);
  });

  test('DMA requests the server refuses', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    await client.mapDma({ iova: 0x10000, size: 0x4000 });
    expect((await rejection(client.mapDma({ iova: 0x12000, size: 0x4000 }))).code).toBe('EEXIST');
    expect((await rejection(client.unmapDmaRange(0x10000, 0x1000))).code).toBe('ENOENT');
    // A DMA_MAP shorter than its structure.
    expect((await rejection(client.request(Command.DMA_MAP, Buffer.alloc(8)))).code).toBe('EINVAL');
    await stillServes(client);
  });

  test('a handler that throws: error reply, error event, still serving', async () => {
    const device = new TestDevice();
    const { client, server } = await serveAndConnect(device);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    expect((await rejection(client.read32(0, REG.BOMB))).code).toBe('EIO');
    expect((await rejection(client.write32(0, REG.BOMB, 1))).code).toBe('EIO');
    expect(errors.map((e) => e.message)).toEqual(['boom', 'bang']);
    await stillServes(client);
  });

  test("a thrown VfioUserError's errno reaches the client", async () => {
    const device = new TestDevice();
    const { client, server } = await serveAndConnect(device);
    const error = nextEvent<[Error]>(server, 'error');
    const err = await rejection(client.read32(0, REG.NOSPACE));
    expect(err).toBeInstanceOf(VfioUserError);
    expect(err.code).toBe('ENOSPC');
    expect((await error)[0]).toBeInstanceOf(VfioUserError);
    await stillServes(client);
  });

  test('a throwing hook: the request fails, the device keeps serving', async () => {
    class Grumpy extends PciDevice {
      constructor() {
        super({ vendorId: 1, deviceId: 2, bars: [{ index: 0, size: 16, handler: { read: (_o, d) => d.fill(7), write: () => {} } }] });
      }
      override onReset(kind: string): void {
        if (kind === 'device') {
          throw new Error('no reset for you');
        }
      }
    }
    const { client, server } = await serveAndConnect(new Grumpy());
    const error = nextEvent<[Error]>(server, 'error');
    expect((await rejection(client.reset())).code).toBe('EIO');
    expect((await error)[0].message).toBe('no reset for you');
    expect(await client.read8(0, 3)).toBe(7);
  });

  test("without an 'error' listener, errors become process warnings", async () => {
    const { client } = await serveAndConnect(new TestDevice());
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      expect((await rejection(client.read32(0, REG.BOMB))).code).toBe('EIO');
      expect(emitWarning).toHaveBeenCalledWith('boom', expect.objectContaining({ type: 'VfioUserServerError' }));
    } finally {
      emitWarning.mockRestore();
    }
    await stillServes(client);
  });

  test('requests after the client closed fail with ENOTCONN', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    await client.close();
    expect(client.connected).toBe(false);
    expect((await rejection(client.read32(0, 0))).code).toBe('ENOTCONN');
  });

  test('config region is region 7 for the raw API too', async () => {
    const { client } = await serveAndConnect(new TestDevice());
    const reply = await client.request(Command.REGION_READ, regionAccess(Region.CONFIG, 0n, 2));
    expect(reply.payload.readUInt16LE(16)).toBe(0x1b36);
  });
});
