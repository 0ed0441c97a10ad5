import { Region } from 'vfio-user';

import createEdu, { EDU_BUFFER_SIZE, EduDevice, EduDmaCommand, EduIrq, EduRegister, EduStatus } from '../../examples/edu';
import { serveAndConnect } from '../helpers';

const BAR0 = 0;
const RAM = 0x100000;

const pattern = (length: number, seed: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 13 + seed) & 0xff));

async function waitDma(client: Awaited<ReturnType<typeof serveAndConnect>>['client']): Promise<void> {
  const deadline = Date.now() + 2000;
  while ((await client.read32(BAR0, EduRegister.DMA_CMD)) & EduDmaCommand.START) {
    if (Date.now() > deadline) {
      throw new Error('the DMA did not finish');
    }
  }
}

describe('the edu example through the client', () => {
  test('identity: IDs, a 1 MiB BAR, INTA# and MSI', async () => {
    const { client } = await serveAndConnect(createEdu());
    expect(await client.read16(Region.CONFIG, 0)).toBe(0x1234);
    expect(await client.read16(Region.CONFIG, 2)).toBe(0x11e8);
    expect(await client.read8(Region.CONFIG, 0x3d)).toBe(1);
    expect((await client.getRegionInfo(BAR0)).size).toBe(1 << 20);
    expect(await client.findCapability(0x05)).toBeDefined();
    expect(await client.read32(BAR0, EduRegister.ID)).toBe(0x010000ed);
    await client.write32(BAR0, EduRegister.ID, 0);
    expect(await client.read32(BAR0, EduRegister.ID)).toBe(0x010000ed);
  });

  test('liveness reads back the inverse; unused space reads 0', async () => {
    const { client } = await serveAndConnect(createEdu());
    await client.write32(BAR0, EduRegister.LIVENESS, 0x12345678);
    expect(await client.read32(BAR0, EduRegister.LIVENESS)).toBe(0xedcba987);
    expect(await client.read32(BAR0, 0x1000)).toBe(0);
  });

  test('factorial: busy while it computes, then n! with interrupt 0x1 by MSI when asked', async () => {
    const { client } = await serveAndConnect(createEdu());
    const [msi] = await client.enableInterrupts('msi');
    await client.write32(BAR0, EduRegister.STATUS, EduStatus.IRQ_ON_FACTORIAL | EduStatus.BUSY); // BUSY is read-only
    expect(await client.read32(BAR0, EduRegister.STATUS)).toBe(EduStatus.IRQ_ON_FACTORIAL);
    // Two writes in one message: the second comes while the unit is busy and is ignored.
    await client.writeRegionMulti([
      { region: BAR0, offset: EduRegister.FACTORIAL, data: Buffer.from([10, 0, 0, 0]) },
      { region: BAR0, offset: EduRegister.FACTORIAL, data: Buffer.from([5, 0, 0, 0]) },
    ]);
    expect(await msi.wait(2000)).toBe(1);
    expect(await client.read32(BAR0, EduRegister.STATUS)).toBe(EduStatus.IRQ_ON_FACTORIAL);
    expect(await client.read32(BAR0, EduRegister.FACTORIAL)).toBe(3628800);
    expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(EduIrq.FACTORIAL);
    await client.write32(BAR0, EduRegister.IRQ_ACK, EduIrq.FACTORIAL);
    expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(0);

    await client.write32(BAR0, EduRegister.FACTORIAL, 13); // 13! mod 2^32
    await msi.wait(2000);
    expect(await client.read32(BAR0, EduRegister.FACTORIAL)).toBe(Number(6227020800n % 2n ** 32n));
    await client.write32(BAR0, EduRegister.FACTORIAL, 100000);
    await msi.wait(2000);
    expect(await client.read32(BAR0, EduRegister.FACTORIAL)).toBe(0);
  });

  test('raise and acknowledge: causes accumulate, INTx when MSI is off', async () => {
    const { client } = await serveAndConnect(createEdu());
    const [intx] = await client.enableInterrupts('intx');
    await client.write32(BAR0, EduRegister.IRQ_RAISE, 0x30);
    expect(await intx.wait(1000)).toBe(1);
    await client.write32(BAR0, EduRegister.IRQ_RAISE, 0x02);
    expect(await intx.wait(1000)).toBe(1);
    expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(0x32);
    await client.write32(BAR0, EduRegister.IRQ_ACK, 0x12);
    expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(0x20);
  });

  describe.each([
    ['shared guest memory', true],
    ['guest memory reached by DMA_READ / DMA_WRITE messages', false],
  ])('the DMA engine, %s', (_, shared) => {
    test('copies guest memory into the card and back elsewhere, with interrupt 0x100', async () => {
      const edu = new EduDevice();
      const { client } = await serveAndConnect(edu);
      const ram = await client.mapDma({ iova: RAM, size: 0x10000, shared });
      const [msi] = await client.enableInterrupts('msi');
      const data = pattern(EDU_BUFFER_SIZE, 3);
      ram.write(RAM + 0x1000, data);

      await client.write64(BAR0, EduRegister.DMA_SRC, BigInt(RAM + 0x1000));
      await client.write64(BAR0, EduRegister.DMA_DST, BigInt(EduRegister.BUFFER));
      await client.write64(BAR0, EduRegister.DMA_COUNT, BigInt(EDU_BUFFER_SIZE));
      await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.IRQ);
      await waitDma(client);
      expect(await msi.wait(1000)).toBe(1);
      expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(EduIrq.DMA);
      expect(await client.readBar(BAR0, EduRegister.BUFFER, 64)).toEqual(data.subarray(0, 64));
      expect(edu.buffer.buffer).toEqual(data);

      // 32-bit halves, as a driver with 32-bit accesses writes them.
      await client.write32(BAR0, EduRegister.DMA_SRC, EduRegister.BUFFER + 0x100);
      await client.write32(BAR0, EduRegister.DMA_SRC + 4, 0);
      await client.write32(BAR0, EduRegister.DMA_DST, RAM + 0x8000);
      await client.write32(BAR0, EduRegister.DMA_COUNT, 0x200);
      await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.TO_RAM);
      await waitDma(client);
      expect(ram.read(RAM + 0x8000, 0x200)).toEqual(data.subarray(0x100, 0x300));
      expect(edu.dmaError).toBeUndefined();
    });

    test('a DMA outside the card buffer or guest memory copies nothing, raises nothing, and is reported', async () => {
      const edu = new EduDevice();
      const { client, server } = await serveAndConnect(edu);
      const faults: Error[] = [];
      const warnings: string[] = [];
      server.on('dma-fault', (err) => faults.push(err));
      server.on('log', (_level, message) => warnings.push(message));
      await client.mapDma({ iova: RAM, size: 0x1000, shared });
      const [msi] = await client.enableInterrupts('msi');
      edu.buffer.buffer.fill(0x77);

      await client.write64(BAR0, EduRegister.DMA_SRC, BigInt(RAM + 0x800));
      await client.write64(BAR0, EduRegister.DMA_DST, BigInt(EduRegister.BUFFER));
      await client.write64(BAR0, EduRegister.DMA_COUNT, 0x1000n); // runs past the guest memory
      await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.IRQ);
      await waitDma(client);
      expect(edu.dmaError).toMatchObject({ reason: 'unmapped' });

      await client.write64(BAR0, EduRegister.DMA_SRC, BigInt(RAM));
      await client.write64(BAR0, EduRegister.DMA_DST, BigInt(EduRegister.BUFFER + 0xf00));
      await client.write64(BAR0, EduRegister.DMA_COUNT, 0x200n); // runs past the card buffer
      await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.IRQ);
      await waitDma(client);
      expect(edu.dmaError).toBeInstanceOf(RangeError);

      // Above 2^53 an address has no exact number: it fails rather than rounding to another one.
      await client.write64(BAR0, EduRegister.DMA_SRC, (1n << 60n) + BigInt(RAM));
      await client.write64(BAR0, EduRegister.DMA_DST, BigInt(EduRegister.BUFFER));
      await client.write64(BAR0, EduRegister.DMA_COUNT, 0x10n);
      await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START | EduDmaCommand.IRQ);
      await waitDma(client);
      expect(edu.dmaError?.message).toMatch(/0x1000000000100000 is beyond/);
      // Each failure reached the server's 'dma-fault' event and its log.
      expect(faults.map((e) => e.message)).toEqual([
        expect.stringMatching(/./), expect.stringMatching(/leaves the buffer/), expect.stringMatching(/is beyond/),
      ]);
      expect(warnings.filter((m) => m.startsWith('DMA fault: '))).toHaveLength(3);

      expect(edu.buffer.buffer.every((b) => b === 0x77)).toBe(true);
      expect(await client.read32(BAR0, EduRegister.IRQ_STATUS)).toBe(0);
      expect(msi.take()).toBe(0);
    });
  });

  test('DMA registers ignore writes while a DMA runs; a reset stops it', async () => {
    const edu = new EduDevice();
    const { client } = await serveAndConnect(edu);
    await client.mapDma({ iova: RAM, size: 0x1000, shared: false });
    await client.write64(BAR0, EduRegister.DMA_SRC, BigInt(RAM));
    await client.write64(BAR0, EduRegister.DMA_DST, BigInt(EduRegister.BUFFER));
    await client.write64(BAR0, EduRegister.DMA_COUNT, 0x100n);
    // Both writes in one message: the second lands while the first DMA is in flight.
    await client.writeRegionMulti([
      { region: BAR0, offset: EduRegister.DMA_CMD, data: Buffer.from([EduDmaCommand.START, 0, 0, 0]) },
      { region: BAR0, offset: EduRegister.DMA_COUNT, data: Buffer.from([0x10, 0, 0, 0]) },
    ]);
    expect(await client.read32(BAR0, EduRegister.DMA_COUNT)).toBe(0x100);
    await waitDma(client);

    await client.write32(BAR0, EduRegister.DMA_CMD, EduDmaCommand.START);
    await client.reset();
    expect(await client.read32(BAR0, EduRegister.DMA_CMD)).toBe(0);
    expect(await client.read32(BAR0, EduRegister.DMA_SRC)).toBe(0);
  });
});
