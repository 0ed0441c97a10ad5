import { VirtioDevice, VirtioDeviceType, VirtioFeature, VirtioIsr, VirtioStatus, VirtqDescFlag, type Virtqueue, type VirtqueueRequest } from 'vfio-user/virtio';

import { VirtioRng } from '../../examples/virtio-rng';
import { serveAndConnect } from '../helpers';
import { TestVirtioDriver } from './driver';

const RAM = 0x100000;
const EVENT_IDX = 1n << BigInt(VirtioFeature.RING_EVENT_IDX);
const INDIRECT = 1n << BigInt(VirtioFeature.RING_INDIRECT_DESC);

/** Echoes the readable part, reversed, into the writable part; completions wait for `release()` when held. */
class EchoDevice extends VirtioDevice {
  readonly seen: VirtqueueRequest[] = [];
  hold = false;
  private held: Array<() => void> = [];

  constructor() {
    super({ type: VirtioDeviceType.CONSOLE, queues: 2, queueSize: 16 });
  }

  override async onRequest(queue: Virtqueue, request: VirtqueueRequest): Promise<void> {
    void queue;
    this.seen.push(request);
    const data = await request.read();
    data.reverse();
    const n = Math.min(data.length, request.writableLength);
    await request.write(data.subarray(0, n));
    if (this.hold) {
      await new Promise<void>((resolve) => this.held.push(resolve));
    }
    request.complete(n);
  }

  /** Requests waiting for `release()`. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Completes the oldest held request. */
  releaseOne(): void {
    this.held.shift()?.();
  }

  /** Completes held requests, last first. */
  release(): void {
    for (const resolve of this.held.splice(0).reverse()) {
      resolve();
    }
  }
}

async function start<D extends VirtioDevice>(device: D, shared: boolean) {
  const { client, server } = await serveAndConnect(device);
  const memory = await client.mapDma({ iova: RAM, size: 0x40000, shared });
  return { client, server, memory, driver: await TestVirtioDriver.attach(client, memory) };
}

describe.each([
  ['shared guest memory', true],
  ['guest memory reached by DMA messages', false],
])('split virtqueues, %s', (_, shared) => {
  test('virtio-rng fills a posted buffer and counts the bytes', async () => {
    const rng = new VirtioRng();
    const { driver, memory } = await start(rng, shared);
    const [queue] = await driver.bringUp();
    const head = queue.post({ inLengths: [64] });
    await queue.kick();
    expect(await queue.waitUsed(1)).toEqual([{ id: head, len: 64 }]);
    const [buffer] = queue.writableOf.get(head)!;
    expect(memory.read(buffer.address, 64).equals(Buffer.alloc(64))).toBe(false);
    expect(rng.bytesServed).toBe(64);
  });

  test('chains of several buffers, direct and indirect, in both directions', async () => {
    const echo = new EchoDevice();
    const { driver, memory } = await start(echo, shared);
    const [queue] = await driver.bringUp({ features: INDIRECT });
    const direct = queue.post({ out: [Buffer.from('abc'), Buffer.from('defg')], inLengths: [2, 5] });
    const indirect = queue.post({ out: [Buffer.from('12345')], inLengths: [1, 1, 3], indirect: true });
    await queue.kick();
    const used = await queue.waitUsed(2);
    expect(used).toEqual(expect.arrayContaining([{ id: direct, len: 7 }, { id: indirect, len: 5 }]));
    const text = (head: number): string => queue.writableOf.get(head)!.map((p) => memory.read(p.address, p.length).toString()).join('');
    expect(text(direct)).toBe('gfedcba');
    expect(text(indirect)).toBe('54321');
    expect(echo.seen[0].readable).toHaveLength(2);
    expect(echo.seen[1].writable).toHaveLength(3);
    expect(echo.seen[0].views('readable') === undefined).toBe(!shared);
  });

  test('requests complete out of order; the used ring carries each head', async () => {
    const echo = new EchoDevice();
    echo.hold = true;
    const { driver } = await start(echo, shared);
    const [queue] = await driver.bringUp();
    const heads = [0, 1, 2].map((i) => queue.post({ out: [Buffer.from([i])], inLengths: [1] }));
    await queue.kick();
    const deadline = Date.now() + 2000;
    while (echo.heldCount < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    echo.release();
    expect((await queue.waitUsed(3)).map((u) => u.id)).toEqual([...heads].reverse());
  });

  test('MSI-X per queue vector; INTx with the ISR queue bit when MSI-X is off', async () => {
    const echo = new EchoDevice();
    const { client, driver } = await start(echo, shared);
    const lines = await client.enableInterrupts('msix');
    const [, q1] = await driver.bringUp({ queues: 2, msix: true });
    q1.post({ out: [Buffer.from('x')], inLengths: [1] });
    await q1.kick();
    expect(await lines[2].wait(1000)).toBe(1);
    expect(lines[1].take()).toBe(0);

    await client.disableInterrupts('msix');
    await client.writeConfig(echo.capabilityOffset('msix')! + 2, Buffer.from([0, 0]));
    const [intx] = await client.enableInterrupts('intx');
    const [q0] = await driver.bringUp({ queues: 2 });
    q0.post({ out: [Buffer.from('y')], inLengths: [1] });
    await q0.kick();
    expect(await intx.wait(1000)).toBe(1);
    expect(await driver.readIsr()).toBe(VirtioIsr.QUEUE);
  });

  test('EVENT_IDX: interrupts only past used_event, avail_event asks for the next kick', async () => {
    const echo = new EchoDevice();
    const { client, driver } = await start(echo, shared);
    const lines = await client.enableInterrupts('msix');
    const [queue] = await driver.bringUp({ features: EVENT_IDX, msix: true });
    queue.setUsedEvent(1); // interrupt when the second chain is used, not the first
    queue.post({ out: [Buffer.from('a')], inLengths: [1] });
    await queue.kick();
    await queue.waitUsed(1);
    expect(queue.availEvent()).toBe(1);
    await echo.queues[0].settled(); // the interrupt was decided: none
    expect(lines[1].take()).toBe(0);
    queue.post({ out: [Buffer.from('b')], inLengths: [1] });
    await queue.kick();
    await queue.waitUsed(1);
    expect(await lines[1].wait(1000)).toBe(1);
    expect(queue.availEvent()).toBe(2);
  });

  test('EVENT_IDX: a completion made while the previous one is still being written still gets its interrupt', async () => {
    const echo = new EchoDevice();
    echo.hold = true;
    const { client, driver } = await start(echo, shared);
    const lines = await client.enableInterrupts('msix');
    const [queue] = await driver.bringUp({ features: EVENT_IDX, msix: true });
    queue.setUsedEvent(1); // only the second completion interrupts
    queue.post({ out: [Buffer.from('a')], inLengths: [1] });
    queue.post({ out: [Buffer.from('b')], inLengths: [1] });
    await queue.kick();
    const deadline = Date.now() + 2000;
    while (echo.heldCount < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    echo.releaseOne();
    setImmediate(() => echo.releaseOne());
    await queue.waitUsed(2);
    expect(await lines[1].wait(1000)).toBe(1);
  });

  test('without EVENT_IDX, avail.flags NO_INTERRUPT suppresses the interrupt', async () => {
    const echo = new EchoDevice();
    const { client, driver } = await start(echo, shared);
    const lines = await client.enableInterrupts('msix');
    const [queue] = await driver.bringUp({ msix: true });
    queue.setAvailFlags(1);
    queue.post({ out: [Buffer.from('a')], inLengths: [1] });
    await queue.kick();
    await queue.waitUsed(1);
    await echo.queues[0].settled(); // the interrupt was decided: none
    expect(lines[1].take()).toBe(0);
    queue.setAvailFlags(0);
    queue.post({ out: [Buffer.from('b')], inLengths: [1] });
    await queue.kick();
    expect(await lines[1].wait(1000)).toBe(1);
  });

  test('a request completed after a reset is dropped, and the queue works again after bring-up', async () => {
    const echo = new EchoDevice();
    echo.hold = true;
    const { driver } = await start(echo, shared);
    const [queue] = await driver.bringUp();
    queue.post({ out: [Buffer.from('a')], inLengths: [1] });
    await queue.kick();
    const deadline = Date.now() + 2000;
    while (echo.heldCount < 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await driver.writeCommon(0x14, 1, 0);
    echo.release();
    await echo.queues[0].settled(); // nothing of the old epoch is written
    expect(queue.usedIdx()).toBe(0);
    echo.hold = false;
    const [again] = await driver.bringUp();
    const head = again.post({ out: [Buffer.from('b')], inLengths: [1] });
    await again.kick();
    expect(await again.waitUsed(1)).toEqual([{ id: head, len: 1 }]);
  });
});

describe.each([
  ['shared guest memory', true],
  ['guest memory reached by DMA messages', false],
])('a misbehaving driver gets NEEDS_RESET and the server keeps serving, %s', (_, shared) => {
  /** Brings up an echo device, lets `misbehave` break queue 0, and checks the outcome. */
  async function expectNeedsReset(misbehave: (driver: TestVirtioDriver, queue: ReturnType<TestVirtioDriver['queues']['at']> & object) => Promise<void> | void, reason: RegExp, features = 0n): Promise<void> {
    const echo = new EchoDevice();
    const { client, driver, server } = await start(echo, shared);
    const errors: Error[] = [];
    server.on('error', (err) => errors.push(err));
    const lines = await client.enableInterrupts('msix');
    const [queue] = await driver.bringUp({ msix: true, features });
    await misbehave(driver, queue);
    await queue.kick();
    expect(await lines[0].wait(2000)).toBe(1); // the configuration interrupt
    expect((await driver.status()) & VirtioStatus.NEEDS_RESET).toBe(VirtioStatus.NEEDS_RESET);
    expect(echo.needsResetReason?.message).toMatch(reason);
    expect(echo.seen).toHaveLength(0);
    // Stopped until reset; then it serves again.
    await queue.kick();
    const [again] = await driver.bringUp();
    const head = again.post({ out: [Buffer.from('ok')], inLengths: [2] });
    await again.kick();
    expect(await again.waitUsed(1)).toEqual([{ id: head, len: 2 }]);
    expect((await driver.status()) & VirtioStatus.NEEDS_RESET).toBe(0);
    expect(errors).toEqual([]);
  }

  test('a chain that loops', async () => {
    await expectNeedsReset((_driver, queue) => {
      queue.writeDesc(0, RAM + 0x30000, 8, VirtqDescFlag.NEXT, 1);
      queue.writeDesc(1, RAM + 0x30000, 8, VirtqDescFlag.NEXT, 0);
      queue.publish(0);
    }, /loops or is longer/);
  });

  test('a chain longer than the queue size (an indirect table that loops)', async () => {
    await expectNeedsReset((driver, queue) => {
      const table = driver.alloc(32, 16);
      queue.writeDesc(0, RAM + 0x30000, 8, VirtqDescFlag.NEXT, 1, table);
      queue.writeDesc(1, RAM + 0x30000, 8, VirtqDescFlag.NEXT, 0, table);
      queue.writeDesc(0, table, 32, VirtqDescFlag.INDIRECT, 0);
      queue.publish(0);
    }, /loops or is longer than its 2-entry indirect/, INDIRECT);
  });

  test('a buffer outside guest memory', async () => {
    await expectNeedsReset((_driver, queue) => {
      queue.writeDesc(0, 0x7000_0000, 4096, VirtqDescFlag.WRITE, 0);
      queue.publish(0);
    }, /not in memory the device may write/);
  });

  test('an address past 2^53 and a next index outside the table', async () => {
    await expectNeedsReset((_driver, queue) => {
      queue.writeDesc(0, RAM, 8, VirtqDescFlag.NEXT, 200);
      queue.publish(0);
    }, /links to 200/);
    await expectNeedsReset((driver, queue) => {
      const d = Buffer.alloc(16);
      d.writeBigUInt64LE(0xffff_ffff_ffff_f000n, 0);
      d.writeUInt32LE(16, 8);
      driver.memory.write(queue.desc, d);
      queue.publish(0);
    }, /outside guest memory/);
  });

  test('avail.idx further ahead than the queue size, and a head outside the table', async () => {
    await expectNeedsReset((driver, queue) => {
      const idx = Buffer.alloc(2);
      idx.writeUInt16LE(100);
      driver.memory.write(queue.avail + 2, idx);
    }, /more than the queue size/);
    await expectNeedsReset((_driver, queue) => {
      queue.publish(999);
    }, /outside the 16-entry descriptor table/);
  });

  test('an indirect descriptor the driver did not negotiate', async () => {
    await expectNeedsReset((driver, queue) => {
      const table = driver.alloc(16, 16);
      queue.writeDesc(0, RAM + 0x30000, 8, 0, 0, table);
      queue.writeDesc(0, table, 16, VirtqDescFlag.INDIRECT, 0);
      queue.publish(0);
    }, /RING_INDIRECT_DESC was not negotiated/);
  });

  test('a queue enabled at an address that is not mapped', async () => {
    const echo = new EchoDevice();
    const { client, driver } = await start(echo, shared);
    const lines = await client.enableInterrupts('msix');
    await driver.negotiate(1n << BigInt(VirtioFeature.VERSION_1));
    await driver.writeCommon(0x10, 2, 0);
    await driver.writeCommon(0x16, 2, 0);
    await driver.writeAddress(0x20, 0x9000_0000);
    await driver.writeCommon(0x1c, 2, 1);
    expect(await driver.readCommon(0x1c, 2)).toBe(0); // not enabled
    expect((await driver.status()) & VirtioStatus.NEEDS_RESET).toBe(VirtioStatus.NEEDS_RESET);
    await driver.driverOk();
    expect(lines[0].take()).toBe(0); // no configuration interrupt before DRIVER_OK
    expect(echo.needsResetReason?.message).toMatch(/descriptor table at 0x90000000/);
    const [again] = await driver.bringUp();
    again.post({ out: [Buffer.from('ok')], inLengths: [2] });
    await again.kick();
    await again.waitUsed(1);
  });

  test('guest memory unmapped under a queue', async () => {
    const echo = new EchoDevice();
    const { client, driver, memory } = await start(echo, shared);
    const [queue] = await driver.bringUp();
    await client.unmapDma(memory);
    await queue.kick();
    const deadline = Date.now() + 2000;
    while (echo.status === 0 || (echo.status & VirtioStatus.NEEDS_RESET) === 0) {
      if (Date.now() > deadline) {
        throw new Error('no NEEDS_RESET');
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(echo.needsResetReason).toBeDefined();
    expect(await driver.readCommon(0x12, 2)).toBe(2); // still serving
  });
});
