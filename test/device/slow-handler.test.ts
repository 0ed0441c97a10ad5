/**
 * A handler or reset hook that runs long gets a warning (the 'slow-handler'
 * event and a log line) well before QEMU's 5000 ms x-msg-timeout would drop
 * the device; fast ones get none, and a bad threshold is refused.
 */
import { OptionsError, PciDevice, type VfioUserServer } from 'vfio-user';

import { connect, serve } from '../helpers';

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Blocks the event loop on purpose, as a slow handler does.
  }
}

class Sluggish extends PciDevice {
  constructor() {
    super({
      vendorId: 0x1b36, deviceId: 0x10ff, classCode: 0xff0000,
      bars: [{
        index: 0, size: 0x100,
        handler: {
          read: (offset, data) => {
            busyWait(offset === 0x10 ? 120 : offset === 0x20 ? 30 : 0);
            data.fill(1);
          },
          write: () => undefined,
        },
      }],
    });
  }
  override onReset(): void {
    busyWait(120);
  }
}

function record(server: VfioUserServer): { slow: Array<[string, number]>; warnings: string[] } {
  const seen = { slow: [] as Array<[string, number]>, warnings: [] as string[] };
  server.on('slow-handler', (name, ms) => seen.slow.push([name, ms]));
  server.on('log', (level, message) => {
    if (level === 4) seen.warnings.push(message);
  });
  return seen;
}

test('a slow BAR handler and a slow onReset are reported; fast accesses are not', async () => {
  const server = serve(new Sluggish(), { slowHandlerMs: 100 });
  const seen = record(server);
  const client = await connect(server);
  expect(await client.read32(0, 0x0)).toBe(0x01010101);
  expect(seen.slow).toEqual([]);
  expect(await client.read32(0, 0x10)).toBe(0x01010101);
  expect(seen.slow).toEqual([['BAR 0 read handler', expect.any(Number)]]);
  expect(seen.slow[0][1]).toBeGreaterThanOrEqual(100);
  expect(seen.warnings.some((m) => /^BAR 0 read handler took \d+ ms: QEMU drops .*x-msg-timeout/.test(m))).toBe(true);
  await client.reset();
  expect(seen.slow.map(([name]) => name)).toContain('onReset');
  // The device keeps serving.
  expect(await client.read32(0, 0x0)).toBe(0x01010101);
  await client.close();
});

test('a threshold under the coarse clock\'s reach is timed with the precise clock', async () => {
  const server = serve(new Sluggish(), { slowHandlerMs: 10 });
  const seen = record(server);
  const client = await connect(server);
  await client.read32(0, 0x20);
  expect(seen.slow).toEqual([['BAR 0 read handler', expect.any(Number)]]);
  expect(seen.slow[0][1]).toBeGreaterThanOrEqual(10);
  await client.close();
});

test('the default threshold is well under QEMU\'s timeout and above a fast handler', async () => {
  const server = serve(new Sluggish());
  const seen = record(server);
  const client = await connect(server);
  await client.read32(0, 0x10); // 120 ms: under the 1000 ms default
  expect(seen.slow).toEqual([]);
  await client.close();
});

test('a threshold that is not a positive number is refused', () => {
  for (const slowHandlerMs of [0, -5, Number.NaN, '10' as unknown as number]) {
    expect(() => serve(new Sluggish(), { slowHandlerMs })).toThrow(OptionsError);
  }
});
