/**
 * A virtio-blk device migrates from server A to server B with writes in
 * flight on two queues: B serves the chains A had taken and not returned,
 * the ring positions, features, status and MSI-X vectors carry over, A
 * returns nothing after the stop, and B goes on serving the same driver.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { migrate } from 'vfio-user/client';
import { VirtioStatus, type Virtqueue, type VirtqueueRequest } from 'vfio-user/virtio';

import { VirtioBlk, VirtioBlkFeature, VirtioBlkStatus, VirtioBlkType } from '../../examples/virtio-blk';
import { VirtioRng } from '../../examples/virtio-rng';
import { decodeVirtioState } from '../../lib/virtio/migration-state';
import { connect, serve } from '../helpers';
import { header, pattern } from './blk-requests';
import { TestVirtioDriver } from './driver';

const RAM = 0x100000;
const RAM_SIZE = 0x100000;
const DISK_SIZE = 1 << 20;
const WRITES_PER_QUEUE = 3;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmig-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A disk whose requests wait at a gate once it is closed. */
class GatedBlk extends VirtioBlk {
  gated = false;
  waiting = 0;
  #open: () => void = () => undefined;
  readonly #gate = new Promise<void>((resolve) => (this.#open = resolve));

  open(): void {
    this.#open();
  }

  override async onRequest(queue: Virtqueue, request: VirtqueueRequest): Promise<void> {
    if (this.gated) {
      this.waiting++;
      await this.#gate;
    }
    return super.onRequest(queue, request);
  }
}

describe.each([['shared memory', true], ['DMA messages', false]])('virtio-blk migration with writes in flight, %s', (_, shared) => {
  test('B serves the chains A had taken; rings, status, features and vectors carry over; A returns nothing after the stop', async () => {
    const disk = join(dir, `disk-${String(shared)}.img`);
    writeFileSync(disk, Buffer.alloc(DISK_SIZE));
    const a = new GatedBlk({ path: disk, queues: 2, queueSize: 64 });
    const b = new VirtioBlk({ path: disk, queues: 2, queueSize: 64 });
    try {
      const serverA = serve(a);
      const clientA = await connect(serverA);
      const clientB = await connect(serve(b));
      const memA = await clientA.mapDma({ iova: RAM, size: RAM_SIZE, shared });
      const memB = await clientB.mapDma({ iova: RAM, size: RAM_SIZE, shared });
      await clientA.enableInterrupts('msix');
      const driver = await TestVirtioDriver.attach(clientA, memA);
      const queues = await driver.bringUp({ queues: 2, size: 64, msix: true, features: 1n << BigInt(VirtioBlkFeature.MQ) });

      // One write completes before the gate closes: the rings are not at 0.
      const first = queues[0].post({ out: [header(VirtioBlkType.OUT, 0), pattern(512, 99)], inLengths: [1] });
      await queues[0].kick();
      expect((await queues[0].waitUsed(1))[0].id).toBe(first);

      a.gated = true;
      const posted = queues.map((queue, qi) => Array.from({ length: WRITES_PER_QUEUE }, (_unused, i) => {
        const sector = 8 + (qi * WRITES_PER_QUEUE + i) * 8;
        return queue.post({ out: [header(VirtioBlkType.OUT, sector), pattern(4096, qi * 10 + i)], inLengths: [1] });
      }));
      await Promise.all(queues.map((queue) => queue.kick()));
      const deadline = Date.now() + 5000;
      while (a.waiting < 2 * WRITES_PER_QUEUE && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(a.waiting).toBe(2 * WRITES_PER_QUEUE);

      const usedAtStop = queues.map((queue) => queue.usedIdx());
      serverA.on('migration', (state) => {
        if (state === 'stop-copy') {
          a.open(); // A's requests go on after the stop; their completions must be dropped
        }
      });
      const { interrupts } = await migrate(clientA, clientB, { onData: () => memB.write(RAM, memA.read(RAM, RAM_SIZE)) });
      driver.moveTo(clientB, memB);

      for (const [qi, queue] of queues.entries()) {
        const used = await queue.waitUsed(WRITES_PER_QUEUE);
        expect(used.map((u) => u.id).sort((x, y) => x - y)).toEqual([...posted[qi]].sort((x, y) => x - y));
        for (const head of posted[qi]) {
          const [status] = queue.writableOf.get(head)!;
          expect(memB.read(status.address, 1)[0]).toBe(VirtioBlkStatus.OK);
        }
        expect(await interrupts[qi + 1].wait(2000)).toBeGreaterThan(0);
      }
      const file = readFileSync(disk);
      for (let qi = 0; qi < 2; qi++) {
        for (let i = 0; i < WRITES_PER_QUEUE; i++) {
          const at = (8 + (qi * WRITES_PER_QUEUE + i) * 8) * 512;
          expect(file.subarray(at, at + 4096).equals(pattern(4096, qi * 10 + i))).toBe(true);
        }
      }
      // A wrote nothing into its rings after the stop (on the message path its DMA is refused, on the shared one its completions are dropped).
      // A timed window: the dropped requests end their file I/O at their own pace, and nothing marks the last.
      await new Promise((resolve) => setTimeout(resolve, 50));
      queues.forEach((queue, qi) => expect(memA.read(queue.used + 2, 2).readUInt16LE()).toBe(usedAtStop[qi]));
      expect(a.needsResetReason).toBeUndefined();

      // B is the device now: the transport state came along, and it serves new requests.
      expect(await driver.status()).toBe(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
      expect(b.negotiated(VirtioBlkFeature.MQ)).toBe(true);
      expect(b.queues.map((q) => q.msixVector)).toEqual([1, 2]);
      const read = queues[1].post({ out: [header(VirtioBlkType.IN, 0)], inLengths: [512, 1] });
      await queues[1].kick();
      expect((await queues[1].waitUsed(1))[0]).toEqual({ id: read, len: 513 });
      const [data] = queues[1].writableOf.get(read)!;
      expect(memB.read(data.address, 512).equals(pattern(512, 99))).toBe(true);
      expect(b.needsResetReason).toBeUndefined();
    } finally {
      a.close();
      b.close();
    }
  });
});

test('a stop called off: the source serves its outstanding chains again, each returned once', async () => {
  const disk = join(dir, 'disk-called-off.img');
  writeFileSync(disk, Buffer.alloc(DISK_SIZE));
  const a = new GatedBlk({ path: disk, queueSize: 64 });
  try {
    const client = await connect(serve(a));
    const memory = await client.mapDma({ iova: RAM, size: RAM_SIZE, shared: false });
    const driver = await TestVirtioDriver.attach(client, memory);
    const [queue] = await driver.bringUp({ size: 64 });
    a.gated = true;
    const heads = [0, 1, 2].map((i) => queue.post({ out: [header(VirtioBlkType.OUT, i * 8), pattern(4096, i)], inLengths: [1] }));
    await queue.kick();
    const deadline = Date.now() + 5000;
    while (a.waiting < heads.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await client.setMigrationState('stop');
    a.open(); // the requests of before the stop go on, dropped
    // A timed window: dropped requests end their file I/O at their own pace, and nothing marks the last.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(queue.usedIdx()).toBe(0);
    await client.setMigrationState('running');
    const used = await queue.waitUsed(heads.length);
    expect(used.map((u) => u.id).sort((x, y) => x - y)).toEqual(heads);
    // A timed window for a second completion of any chain, which would come from a request served twice.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(queue.usedIdx()).toBe(heads.length);
    expect(a.counts.out).toBe(heads.length);
    expect(a.needsResetReason).toBeUndefined();
  } finally {
    a.close();
  }
});

test('a state that does not fit the device is refused, naming the field', () => {
  const shape = { deviceFeatures: 0x1_3000_0000n, queues: 1, maxQueueSize: 64, configSize: 4, msixVectors: 2 };
  const queue = {
    size: 16, msixVector: 1, enabled: true, descAddress: 0x1000, driverAddress: 0x2000, deviceAddress: 0x3000,
    lastAvail: 5, usedIdx: 3, signalledUsed: 3, outstanding: [4, 7],
  };
  const good = {
    status: 15, driverFeatures: '100000000', deviceFeatureSelect: 0, driverFeatureSelect: 1, configMsixVector: 0,
    generation: 2, queueSelect: 0, isr: 0, config: Buffer.alloc(4).toString('base64'), needsReset: null, queues: [queue], typeState: null,
  };
  const encode = (state: object): Buffer => Buffer.from(JSON.stringify(state));
  expect(decodeVirtioState(encode(good), shape).queues[0].outstanding).toEqual([4, 7]);
  const bad: Array<[object, RegExp]> = [
    [{ ...good, driverFeatures: '200000000' }, /driverFeatures/],
    [{ ...good, config: Buffer.alloc(8).toString('base64') }, /device configuration/],
    [{ ...good, queues: [] }, /1 queues/],
    [{ ...good, configMsixVector: 2 }, /configMsixVector/],
    [{ ...good, status: 256 }, /status/],
    [{ ...good, queues: [{ ...queue, size: 128 }] }, /size/],
    [{ ...good, queues: [{ ...queue, size: 12 }] }, /power of two/],
    [{ ...good, queues: [{ ...queue, outstanding: [4, 16] }] }, /outstanding/],
    [{ ...good, queues: [{ ...queue, outstanding: [4, 4] }] }, /outstanding/],
    [{ ...good, queues: [{ ...queue, outstanding: [4] }] }, /1 outstanding chains, but 5 taken and 3 used/],
    [{ ...good, queues: [{ ...queue, enabled: 1 }] }, /enabled/],
    [{ ...good, typeState: 5 }, /typeState/],
  ];
  for (const [state, message] of bad) {
    expect(() => decodeVirtioState(encode(state), shape)).toThrow(message);
  }
  expect(() => decodeVirtioState(Buffer.from('not json'), shape)).toThrow(SyntaxError);
});

/** An entropy device that carries its count across a migration, as a device type with state of its own does. */
class CountingRng extends VirtioRng {
  override saveDeviceState(): Uint8Array {
    return new Uint8Array(Uint32Array.of(this.bytesServed).buffer);
  }

  override loadDeviceState(state: Buffer): void {
    if (state.length !== 4) {
      throw new RangeError(`a CountingRng state is 4 bytes, not ${state.length}`);
    }
    this.bytesServed = state.readUInt32LE(0);
  }
}

test('the device type\'s own state travels with the transport; the configuration generation and vectors too', async () => {
  const a = new CountingRng();
  const b = new CountingRng();
  const clientA = await connect(serve(a));
  const clientB = await connect(serve(b));
  const memA = await clientA.mapDma({ iova: RAM, size: RAM_SIZE, shared: true });
  const memB = await clientB.mapDma({ iova: RAM, size: RAM_SIZE, shared: true });
  await clientA.enableInterrupts('msix');
  const driver = await TestVirtioDriver.attach(clientA, memA);
  const [queue] = await driver.bringUp({ size: 16, msix: true });
  queue.post({ inLengths: [100] });
  await queue.kick();
  await queue.waitUsed(1);
  a.configChanged();
  const { interrupts } = await migrate(clientA, clientB, { onData: () => memB.write(RAM, memA.read(RAM, RAM_SIZE)) });
  driver.moveTo(clientB, memB);
  expect(b.bytesServed).toBe(100);
  expect(b.configGeneration).toBe(a.configGeneration);
  expect(b.queues[0].msixVector).toBe(1);
  queue.post({ inLengths: [28] });
  await queue.kick();
  expect((await queue.waitUsed(1))[0].len).toBe(28);
  expect(await interrupts[1].wait(2000)).toBeGreaterThan(0);
  expect(b.bytesServed).toBe(128);
});
