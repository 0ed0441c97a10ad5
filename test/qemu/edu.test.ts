/**
 * examples/edu.ts, served from this process, driven by a guest through
 * QEMU: its DMA engine copies between guest RAM and the card's buffer on
 * both DMA paths. With `memory-backend-memfd,share=on` guest RAM, QEMU
 * passes fds with its DMA mappings and the device reaches RAM directly;
 * with default guest RAM it passes none and every byte goes through
 * DMA_READ / DMA_WRITE messages that QEMU answers. The data is checked in
 * guest RAM through qtest, and the completion interrupt arrives as an MSI
 * written into guest RAM or as INTx at the I/O APIC.
 */
import { EDU_BUFFER_SIZE, EduDevice, EduDmaCommand, EduIrq, EduRegister } from '../../examples/edu';
import { serveInProcess, ServedDevice } from './devices/serve';
import { enableMsi, makeTempDir, MSG_RAM, openSession, PCI_CAP_ID_MSI, pollFor, Session, waitForDword } from './harness';
import { describeWithQemu } from './support';

const BAR = 0;
const SOURCE = 0x200000;
const DESTINATION = 0x300000;
const MSI_DATA = 0x4711;

const pattern = (length: number, seed: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff));

interface Edu {
  served: ServedDevice<EduDevice>;
  edu: EduDevice;
  s: Session;
}

async function start(memfd: boolean): Promise<Edu> {
  const served = serveInProcess(makeTempDir(), () => new EduDevice(), 'edu');
  const s = await openSession({ deviceSocket: served.socketPath, memfd });
  return { served, edu: served.device, s };
}

/** Programs and starts one DMA with 32-bit BAR writes, as a driver does. */
async function dma(s: Session, source: number, destination: number, count: number, command: number): Promise<void> {
  const { dev } = s;
  await dev.barWrite(BAR, EduRegister.DMA_SRC, 4, source);
  await dev.barWrite(BAR, EduRegister.DMA_SRC + 4, 4, 0);
  await dev.barWrite(BAR, EduRegister.DMA_DST, 4, destination);
  await dev.barWrite(BAR, EduRegister.DMA_DST + 4, 4, 0);
  await dev.barWrite(BAR, EduRegister.DMA_COUNT, 4, count);
  await dev.barWrite(BAR, EduRegister.DMA_CMD, 4, command);
  // BAR writes are posted; reads flush them and tell when the engine is done.
  const idle = await pollFor(async () => ((await dev.barRead(BAR, EduRegister.DMA_CMD, 4)) & EduDmaCommand.START) === 0 || undefined, 5000);
  if (idle === undefined) {
    throw new Error('the DMA did not finish');
  }
}

describeWithQemu('QEMU and the edu example', () => {
  describe.each([
    ['shared guest RAM (memory-backend-memfd): mapped', true],
    ['default guest RAM: DMA_READ / DMA_WRITE messages', false],
  ])('%s', (_, memfd) => {
    test('QEMU maps guest RAM as expected: with fds or without', async () => {
      const { edu, s } = await start(memfd);
      expect(await s.dev.barRead(BAR, EduRegister.ID, 4)).toBe(0x010000ed);
      const ram = edu.dma.mappings.find((m) => m.iova <= SOURCE && m.iova + m.length >= DESTINATION + EDU_BUFFER_SIZE);
      expect(ram).toMatchObject({ readable: true, writable: true, mapped: memfd });
    });

    test('guest RAM to the card and back to other guest RAM, completion by MSI', async () => {
      const { edu, s } = await start(memfd);
      const q = s.qemu.qtest;
      const cap = await s.dev.findCapability(PCI_CAP_ID_MSI);
      expect(cap).toBeDefined();
      await q.memset(MSG_RAM, 0x10, 0);
      await enableMsi(s.dev, cap!, MSG_RAM, MSI_DATA);

      const data = pattern(EDU_BUFFER_SIZE, 7);
      await q.write(SOURCE, data);
      await q.memset(DESTINATION, EDU_BUFFER_SIZE, 0);
      await dma(s, SOURCE, EduRegister.BUFFER, EDU_BUFFER_SIZE, EduDmaCommand.START | EduDmaCommand.IRQ);
      expect(edu.dmaError).toBeUndefined();
      expect(await waitForDword(q, MSG_RAM, MSI_DATA)).toBe(MSI_DATA);
      expect(await s.dev.barRead(BAR, EduRegister.IRQ_STATUS, 4)).toBe(EduIrq.DMA);
      expect(edu.buffer.buffer).toEqual(data);
      expect(await s.dev.barRead(BAR, EduRegister.BUFFER + 0x100, 4)).toBe(data.readUInt32LE(0x100));

      await s.dev.barWrite(BAR, EduRegister.IRQ_ACK, 4, EduIrq.DMA);
      await q.writel(MSG_RAM, 0);
      await dma(s, EduRegister.BUFFER + 0x10, DESTINATION + 0x20, 0x800, EduDmaCommand.START | EduDmaCommand.TO_RAM | EduDmaCommand.IRQ);
      expect(edu.dmaError).toBeUndefined();
      expect(await waitForDword(q, MSG_RAM, MSI_DATA)).toBe(MSI_DATA);
      expect(await q.read(DESTINATION + 0x20, 0x800)).toEqual(data.subarray(0x10, 0x810));
      // Nothing around it was touched.
      expect(await q.read(DESTINATION, 0x20)).toEqual(Buffer.alloc(0x20));
      expect(await q.read(DESTINATION + 0x820, 0x20)).toEqual(Buffer.alloc(0x20));
    });

    test('completion by INTx when MSI is off', async () => {
      const { edu, s } = await start(memfd);
      const q = s.qemu.qtest;
      await q.irqInterceptIn('ioapic');
      await q.write(SOURCE, Buffer.from('edu over INTx'));
      const mark = q.irqMark();
      await dma(s, SOURCE, EduRegister.BUFFER, 13, EduDmaCommand.START | EduDmaCommand.IRQ);
      // Raised; the BAR reads that saw the DMA finish have already lowered it again (QEMU's end of interrupt).
      await q.waitIrq(true, undefined, 2000, mark);
      expect(edu.buffer.buffer.subarray(0, 13).toString()).toBe('edu over INTx');
      expect(await s.dev.barRead(BAR, EduRegister.IRQ_STATUS, 4)).toBe(EduIrq.DMA);
    });
  });
});
