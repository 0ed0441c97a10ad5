/**
 * The edu example migrates from server A to server B with migrate(): its
 * registers, card buffer and held interrupts when idle, and a DMA of
 * several chunks in flight at the stop, on both DMA paths and in both
 * directions, which B finishes and completes with its MSI.
 */
import type { VfioUserServer } from '../../lib';
import { migrate, type GuestMemory, type VfioUserClient } from '../../lib/client';

import { EDU_BUFFER_SIZE, EDU_DMA_CHUNK, EduDevice, EduDmaCommand, EduIrq, EduRegister, EduStatus } from '../../examples/edu';
import { connect, serve } from '../helpers';

const BAR0 = 0;
const RAM = 0x100000;
const RAM_SIZE = 0x4000;
const HELD_AT = 3 * EDU_DMA_CHUNK;

const pattern = (length: number, seed: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff));

/** An edu whose DMA engine holds the completion of the chunk at HELD_AT, once, until released. */
class HeldEdu extends EduDevice {
  private release: (() => void) | undefined;
  private readonly heldChunk: Promise<void>;
  private reached: (() => void) | undefined;

  constructor() {
    super();
    this.heldChunk = new Promise((resolve) => {
      this.reached = resolve;
    });
  }

  /** Resolves when the chunk at HELD_AT has been issued and is held. */
  held(): Promise<void> {
    return this.heldChunk;
  }

  /** Lets the held chunk complete. */
  releaseChunk(): void {
    this.release?.();
  }

  override onDmaChunk(offset: number): Promise<void> | void {
    if (offset !== HELD_AT || this.release !== undefined) {
      return undefined;
    }
    this.reached?.();
    return new Promise((resolve) => {
      this.release = resolve;
    });
  }
}

interface Pair {
  a: EduDevice;
  b: EduDevice;
  serverA: VfioUserServer;
  clientA: VfioUserClient;
  clientB: VfioUserClient;
}

async function pair(a: EduDevice): Promise<Pair> {
  const b = new EduDevice();
  const serverA = serve(a);
  return { a, b, serverA, clientA: await connect(serverA), clientB: await connect(serve(b)) };
}

async function startDma(client: VfioUserClient, src: number, dst: number, count: number, command: number): Promise<void> {
  await client.write64(BAR0, EduRegister.DMA_SRC, BigInt(src));
  await client.write64(BAR0, EduRegister.DMA_DST, BigInt(dst));
  await client.write64(BAR0, EduRegister.DMA_COUNT, BigInt(count));
  await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.IRQ | command);
}

test('an idle edu migrates with its registers, card buffer and an interrupt held while stopped', async () => {
  const { a, b, clientA, clientB } = await pair(new EduDevice());
  await clientA.enableInterrupts('msi');
  const card = pattern(EDU_BUFFER_SIZE, 5);
  await clientA.writeBar(BAR0, EduRegister.BUFFER, card);
  await clientA.write32(BAR0, EduRegister.LIVENESS, 0x0f0f1234);
  await clientA.write32(BAR0, EduRegister.STATUS, EduStatus.IRQ_ON_FACTORIAL);
  await client32Writes(clientA, [
    [EduRegister.DMA_SRC, 0x1111],
    [EduRegister.DMA_DST, EduRegister.BUFFER + 0x20],
    [EduRegister.DMA_COUNT, 0x40],
  ]);
  // Finished now or by A's onStop: B has the result either way, and no BUSY.
  await clientA.write32(BAR0, EduRegister.FACTORIAL, 10);
  await clientA.setMigrationState('stop');
  await clientA.write32(BAR0, EduRegister.IRQ_RAISE, 0x40); // while stopped: the MSI is held
  expect(a.isPending('msi', 0)).toBe(true);

  const { interrupts } = await migrate(clientA, clientB);
  expect(await interrupts[0].wait(1000)).toBe(1); // the held MSI, raised by B
  expect(await clientB.readBar(BAR0, EduRegister.BUFFER, EDU_BUFFER_SIZE)).toEqual(card);
  expect(await clientB.read32(BAR0, EduRegister.LIVENESS)).toBe(~0x0f0f1234 >>> 0);
  expect(await clientB.read32(BAR0, EduRegister.FACTORIAL)).toBe(3628800);
  expect(await clientB.read32(BAR0, EduRegister.STATUS)).toBe(EduStatus.IRQ_ON_FACTORIAL);
  expect(await clientB.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(EduIrq.FACTORIAL | 0x40);
  expect(await clientB.read64(BAR0, EduRegister.DMA_SRC)).toBe(0x1111n);
  expect(await clientB.read64(BAR0, EduRegister.DMA_DST)).toBe(BigInt(EduRegister.BUFFER + 0x20));
  expect(await clientB.read64(BAR0, EduRegister.DMA_COUNT)).toBe(0x40n);
  expect(await clientB.read64(BAR0, EduRegister.DMA_CMD)).toBe(0n);
  expect(b.dmaProgress).toBeUndefined();

  // B works on: a DMA from its card to its guest memory completes by MSI.
  const ram = await clientB.mapDma({ iova: RAM, size: RAM_SIZE });
  await startDma(clientB, EduRegister.BUFFER, RAM, EDU_BUFFER_SIZE, EduDmaCommand.TO_RAM);
  expect(await interrupts[0].wait(1000)).toBe(1);
  expect(ram.read(RAM, EDU_BUFFER_SIZE)).toEqual(card);
});

async function client32Writes(client: VfioUserClient, writes: Array<[number, number]>): Promise<void> {
  for (const [offset, value] of writes) {
    await client.write32(BAR0, offset, value);
  }
}

describe.each([
  ['shared guest memory (memfd)', true],
  ['guest memory reached by DMA_READ / DMA_WRITE messages', false],
])('a DMA in flight at the stop, %s', (_, shared) => {
  /**
   * Starts a DMA of the whole buffer on A and holds its fourth chunk's
   * completion; migrates, releasing that completion once A has stopped,
   * and copies A's guest RAM to B's while A is stopped, as the VMM does.
   */
  async function migrateInFlight(command: number, setUp: (p: Pair, memA: GuestMemory, memB: GuestMemory) => Promise<void> | void) {
    const a = new HeldEdu();
    const p = await pair(a);
    const memA = await p.clientA.mapDma({ iova: RAM, size: RAM_SIZE, shared });
    const memB = await p.clientB.mapDma({ iova: RAM, size: RAM_SIZE, shared });
    const [lineA] = await p.clientA.enableInterrupts('msi');
    await setUp(p, memA, memB);
    await startDma(p.clientA, command === EduDmaCommand.TO_RAM ? EduRegister.BUFFER : RAM, command === EduDmaCommand.TO_RAM ? RAM : EduRegister.BUFFER, EDU_BUFFER_SIZE, command);
    await a.held();
    expect(a.dmaProgress).toBe(HELD_AT);
    expect(await p.clientA.read32(BAR0, EduRegister.DMA_CMD)).toBe(EduDmaCommand.START | EduDmaCommand.IRQ | command);

    let progressAtStop: number | undefined;
    p.serverA.on('migration', (state) => {
      if (state === 'stop-copy') {
        progressAtStop = a.dmaProgress;
        a.releaseChunk(); // the held chunk completes after the stop
      }
    });
    const result = await migrate(p.clientA, p.clientB, {
      onData: () => memB.write(RAM, memA.read(RAM, RAM_SIZE)),
    });
    expect(progressAtStop).toBe(HELD_AT);
    // B finishes the transfer and raises the completion MSI.
    expect(await result.interrupts[0].wait(2000)).toBe(1);
    expect(await p.clientB.read32(BAR0, EduRegister.DMA_CMD)).toBe(EduDmaCommand.IRQ | command);
    expect(await p.clientB.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(EduIrq.DMA);
    expect(p.b.dmaError).toBeUndefined();
    expect(p.b.dmaProgress).toBeUndefined();
    // A dropped the chunk that completed while it was stopped: no progress, no interrupt.
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.dmaProgress).toBe(HELD_AT);
    expect(a.isPending('msi', 0)).toBe(false);
    expect(lineA.take()).toBe(0);
    return { ...p, memA, memB };
  }

  test('from the card to guest memory: B writes the rest into its guest memory', async () => {
    const card = pattern(EDU_BUFFER_SIZE, 9);
    const { memA, memB } = await migrateInFlight(EduDmaCommand.TO_RAM, async ({ clientA }) => {
      await clientA.writeBar(BAR0, EduRegister.BUFFER, card);
    });
    expect(memB.read(RAM, EDU_BUFFER_SIZE)).toEqual(card);
    // A's guest memory has the chunks A moved before the stop (and the held one, sent before it).
    expect(memA.read(RAM, HELD_AT)).toEqual(card.subarray(0, HELD_AT));
    expect(memA.read(RAM + HELD_AT + EDU_DMA_CHUNK, EDU_DMA_CHUNK)).toEqual(Buffer.alloc(EDU_DMA_CHUNK));
  });

  test('from guest memory to the card: B reads the rest and the card holds it all', async () => {
    const data = pattern(EDU_BUFFER_SIZE, 11);
    const { a, clientB } = await migrateInFlight(0, (_p, memA) => {
      memA.write(RAM, data);
    });
    expect(await clientB.readBar(BAR0, EduRegister.BUFFER, EDU_BUFFER_SIZE)).toEqual(data);
    // A's card is untouched: read chunks are applied only when all have arrived.
    expect(a.buffer.buffer.equals(Buffer.alloc(EDU_BUFFER_SIZE))).toBe(true);
  });
});

test('a cancelled migration: the source resumes its DMA from where it stopped', async () => {
  const a = new HeldEdu();
  const clientA = await connect(serve(a));
  const mem = await clientA.mapDma({ iova: RAM, size: RAM_SIZE, shared: false });
  const [line] = await clientA.enableInterrupts('msi');
  const data = pattern(EDU_BUFFER_SIZE, 13);
  mem.write(RAM, data);
  await startDma(clientA, RAM, EduRegister.BUFFER, EDU_BUFFER_SIZE, 0);
  await a.held();
  await clientA.setMigrationState('stop');
  a.releaseChunk();
  await new Promise((resolve) => setImmediate(resolve));
  expect(a.dmaProgress).toBe(HELD_AT);
  expect(line.take()).toBe(0);
  await clientA.setMigrationState('running');
  expect(await line.wait(2000)).toBe(1);
  expect(a.buffer.buffer).toEqual(data);
  expect(await clientA.read32(BAR0, EduRegister.DMA_CMD)).toBe(EduDmaCommand.IRQ);
});
