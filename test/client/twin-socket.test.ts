/**
 * The twin socket from the client's side: offered at VERSION when asked
 * for, it is where the server's DMA_READ / DMA_WRITE arrive once granted
 * (the server then sends them nowhere else, so the transfers below complete
 * only if the client serves that socket).
 */
import { VfioUserClient } from '../../lib/client';
import { TestDevice } from '../fixtures/test-device';
import { serve, until } from '../helpers';

const pattern = (length: number, seed = 1): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 11 + seed) & 0xff));

describe('twin socket', () => {
  test('granted when offered: DMA both ways and in several messages goes over it', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const client = await VfioUserClient.connect(server.socket, { twinSocket: true, maxDataXferSize: 0x1000 });
    try {
      expect(client.serverCapabilities.twinSocketFdIndex).toBe(0);
      const memory = await client.mapDma({ iova: 0x40000, size: 0x8000, shared: false });
      const data = pattern(0x3800, 5);
      await device.dma.write(0x40200, data);
      expect(memory.read(0x40200, 0x3800)).toEqual(data);
      expect(await device.dma.read(0x40200, 0x3800)).toEqual(data);
      // Requests on the main socket go on meanwhile.
      const [info, again] = await Promise.all([client.getDeviceInfo(), device.dma.read(0x40000, 0x1000)]);
      expect(info.isPci).toBe(true);
      expect(again.subarray(0x200)).toEqual(data.subarray(0, 0xe00));
    } finally {
      await client.close();
    }
    await until(() => !server.connected);
  });

  test('not offered by default, and then DMA shares the main socket', async () => {
    const device = new TestDevice();
    const server = serve(device);
    const client = await VfioUserClient.connect(server.socket);
    try {
      expect(client.serverCapabilities.twinSocketFdIndex).toBeUndefined();
      const memory = await client.mapDma({ iova: 0x40000, size: 0x1000, shared: false });
      await device.dma.write(0x40000, pattern(0x100));
      expect(memory.read(0x40000, 0x100)).toEqual(pattern(0x100));
    } finally {
      await client.close();
    }
  });

  test('closing the client closes both sockets: the server sees one disconnect and serves the next client', async () => {
    const device = new TestDevice();
    const server = serve(device);
    let disconnects = 0;
    server.on('disconnect', () => disconnects++);
    const first = await VfioUserClient.connect(server.socket, { twinSocket: true });
    await first.close();
    await until(() => disconnects === 1);
    const second = await VfioUserClient.connect(server.socket, { twinSocket: true });
    try {
      const memory = await second.mapDma({ iova: 0x10000, size: 0x1000, shared: false });
      await device.dma.write(0x10000, pattern(16, 9));
      expect(memory.read(0x10000, 16)).toEqual(pattern(16, 9));
    } finally {
      await second.close();
    }
    // One disconnect per client, though each had two sockets.
    await until(() => disconnects === 2);
  });
});
