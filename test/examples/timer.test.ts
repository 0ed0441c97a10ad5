import { Region, VfioUserServer } from 'vfio-user';
import { VfioUserClient } from 'vfio-user/client';

import { Timer } from '../../examples/timer';
import { socketPath } from '../helpers';

// The README's example, as written there.
test('the timer expires and raises MSI-X vector 0', async () => {
  const server = new VfioUserServer(new Timer(), { socket: socketPath('timer') });
  const client = await VfioUserClient.connect(server.socket);

  const [expired] = await client.enableInterrupts('msix');
  await client.write32(0, 0x4, 5); // COUNT = 5 ms
  await client.write32(0, 0x0, 1); // CTRL.ENABLE
  expect(await expired.wait()).toBe(1);
  expect(await client.read32(0, 0x8)).toBe(1); // STATUS.EXPIRED
  expect(await client.read32(0, 0x4)).toBe(0);

  await client.write32(0, 0x8, 1); // clear EXPIRED
  expect(await client.read32(0, 0x8)).toBe(0);
  await client.reset();
  expect(await client.read32(0, 0x0)).toBe(0);
  expect(await client.read16(Region.CONFIG, 0)).toBe(0x1b36);

  await client.close();
  await server.close();
});
