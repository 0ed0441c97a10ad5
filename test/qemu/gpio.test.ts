/**
 * examples/gpio.ts, served from this process, driven by a guest through
 * QEMU: port I/O to its I/O BAR reaches the TypeScript register map, inputs
 * set from TypeScript are read by the guest, outputs the guest writes are
 * seen by the device, an enabled input that changes raises INTx at the I/O
 * APIC, and QMP system_reset reaches the device's reset handling.
 */
import { type ResetKind } from 'vfio-user';

import createGpio, { GpioCard, GpioRegister } from '../../examples/gpio';
import { serveInProcess, ServedDevice } from './devices/serve';
import { makeTempDir, openSession, resetMachine, Session, sleep } from './harness';
import { describeWithQemu } from './support';

/**
 * How long "nothing arrived" is watched for. QEMU reads the device's
 * interrupt eventfds in its own main loop, unordered with the qtest channel,
 * so no reply we can wait for proves that a signal would have landed by then.
 */
const QUIET_MS = 100;
const BAR = 0;

interface Gpio {
  served: ServedDevice<GpioCard>;
  gpio: GpioCard;
  s: Session;
  /** Every OUTPUT value the device was told of, oldest first. */
  outputs: number[];
  /** Every reset the device saw, oldest first. */
  resets: ResetKind[];
}

/** The example's default export, with its hooks recorded, attached to a fresh QEMU. */
async function start(): Promise<Gpio> {
  const outputs: number[] = [];
  const resets: ResetKind[] = [];
  const served = serveInProcess(makeTempDir(), () => {
    const card = createGpio();
    card.onOutputs = (levels) => outputs.push(levels);
    card.onReset = (kind) => resets.push(kind);
    return card;
  }, 'gpio');
  const s = await openSession({ deviceSocket: served.socketPath });
  return { served, gpio: served.device, s, outputs, resets };
}

describeWithQemu('QEMU and the GPIO example', () => {
  test('enumerates as the example describes it: IDs, class, INTA#, one 256-byte I/O BAR', async () => {
    const { s } = await start();
    expect(s.qmpInfo.id).toMatchObject({ vendor: 0x1b36, device: 0x1101 });
    expect(s.qmpInfo.class_info.class).toBe(0x0880);
    expect(s.qmpInfo.irq_pin).toBe(1);
    expect([...s.dev.bars.values()].map((b) => ({ index: b.index, kind: b.kind, size: b.size }))).toEqual([
      { index: 0, kind: 'io', size: 256 },
    ]);
    expect(s.dev.bar(BAR).address).toBeGreaterThanOrEqual(0xc000);
  });

  test('inputs set from TypeScript are read by the guest with inb and inw; the guest cannot write them', async () => {
    const { gpio, s } = await start();
    const { dev } = s;
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0);

    gpio.setInputs(0xa55a);
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0xa55a);
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 1)).toBe(0x5a);
    expect(await dev.barRead(BAR, GpioRegister.INPUT + 1, 1)).toBe(0xa5);
    gpio.setInput(0, true);
    gpio.setInput(15, false);
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0x255b);

    await dev.barWrite(BAR, GpioRegister.INPUT, 2, 0xffff);
    await dev.barWrite(BAR, GpioRegister.INPUT + 1, 1, 0x00);
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0x255b);
    expect(gpio.inputs).toBe(0x255b);
  });

  test('outputs written with outw, outb and outl reach the device', async () => {
    const { gpio, s, outputs } = await start();
    const { dev } = s;

    await dev.barWrite(BAR, GpioRegister.OUTPUT, 2, 0x1234);
    // Port writes are posted like MMIO writes: a read through QEMU waits for them.
    expect(await dev.barRead(BAR, GpioRegister.OUTPUT, 2)).toBe(0x1234);
    expect(gpio.outputs).toBe(0x1234);

    await dev.barWrite(BAR, GpioRegister.OUTPUT + 1, 1, 0xab); // the high byte alone
    await dev.barWrite(BAR, GpioRegister.OUTPUT, 1, 0xcd); // then the low byte
    expect(await dev.barRead(BAR, GpioRegister.OUTPUT, 2)).toBe(0xabcd);
    expect(gpio.outputs).toBe(0xabcd);

    // A dword write covers OUTPUT and two bytes that belong to no register.
    await dev.barWrite(BAR, GpioRegister.OUTPUT, 4, 0xdead5678);
    expect(await dev.barRead(BAR, GpioRegister.OUTPUT, 4)).toBe(0x5678);
    expect(outputs).toEqual([0x1234, 0xab34, 0xabcd, 0x5678]);
  });

  test('an enabled input that changes raises INTx through the I/O APIC; the guest reads and acknowledges it', async () => {
    const { gpio, s } = await start();
    const { dev } = s;
    const q = s.qemu.qtest;
    await q.irqInterceptIn('ioapic');

    // Not enabled: the change is seen, but no interrupt.
    let mark = q.irqMark();
    gpio.setInput(3, true);
    await sleep(QUIET_MS);
    expect(q.irqEvents.slice(mark)).toEqual([]);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_STATUS, 2)).toBe(0);

    // The guest enables input 3's interrupt; the read flushes the posted write.
    await dev.barWrite(BAR, GpioRegister.IRQ_ENABLE, 2, 1 << 3);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_ENABLE, 2)).toBe(1 << 3);
    expect(gpio.regs.get('irqEnable')).toBe(1 << 3);

    mark = q.irqMark();
    gpio.setInput(3, false);
    const raised = await q.waitIrq(true, undefined, 2000, mark);
    expect(q.irqLevel(raised.line)).toBe(true);
    expect(gpio.regs.get('irqStatus')).toBe(1 << 3);

    // The handler reads the status (any BAR access is QEMU's end of interrupt)...
    const eoi = q.irqMark();
    expect(await dev.barRead(BAR, GpioRegister.IRQ_STATUS, 2)).toBe(1 << 3);
    await q.waitIrq(false, raised.line, 2000, eoi);
    // ...and acknowledges it: write 1 to clear.
    await dev.barWrite(BAR, GpioRegister.IRQ_STATUS, 2, 1 << 3);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_STATUS, 2)).toBe(0);
    expect(gpio.regs.get('irqStatus')).toBe(0);

    // Another input, not enabled, changes: nothing. The enabled one again: a second interrupt.
    mark = q.irqMark();
    gpio.setInput(4, true);
    await sleep(QUIET_MS);
    expect(q.irqEvents.slice(mark)).toEqual([]);
    gpio.setInput(3, true);
    expect((await q.waitIrq(true, raised.line, 2000, mark)).line).toBe(raised.line);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_STATUS, 2)).toBe(1 << 3);
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0x0018);
  });

  test('QMP system_reset reaches the device: onReset runs and the registers return to their reset values', async () => {
    const { gpio, s, resets } = await start();
    const { dev } = s;
    // QEMU resets the device once as it connects.
    expect(resets).toEqual(['device']);

    gpio.setInputs(0x0f0f);
    await dev.barWrite(BAR, GpioRegister.OUTPUT, 2, 0x5a5a);
    await dev.barWrite(BAR, GpioRegister.IRQ_ENABLE, 2, 0x00ff);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_ENABLE, 2)).toBe(0x00ff);
    expect(gpio.outputs).toBe(0x5a5a);

    await resetMachine(s);
    expect(await dev.barRead(BAR, GpioRegister.OUTPUT, 2)).toBe(0);
    expect(await dev.barRead(BAR, GpioRegister.IRQ_ENABLE, 2)).toBe(0);
    expect(resets).toEqual(['device', 'device']);
    expect(gpio.outputs).toBe(0);
    expect(gpio.regs.get('irqEnable')).toBe(0);
    // The input pins are the outside world's, not registers: a reset leaves them.
    expect(await dev.barRead(BAR, GpioRegister.INPUT, 2)).toBe(0x0f0f);

    // QEMU going away is a lost connection, which keeps the registers.
    await dev.barWrite(BAR, GpioRegister.OUTPUT, 2, 0x0001);
    expect(await dev.barRead(BAR, GpioRegister.OUTPUT, 2)).toBe(0x0001);
    await s.qemu.quit();
    for (let i = 0; i < 100 && resets.length < 3; i++) {
      await sleep(10);
    }
    expect(resets).toEqual(['device', 'device', 'lost-connection']);
    expect(gpio.outputs).toBe(0x0001);
  });
});
