import { Region } from 'vfio-user';
import { migrate } from 'vfio-user/client';

import createGpio, { GpioCard, GpioRegister } from '../../examples/gpio';
import { connect, serve, serveAndConnect } from '../helpers';

const BAR0 = 0;

describe('the GPIO example through the client', () => {
  test('identity and a 256-byte I/O BAR with INTA#', async () => {
    const { client } = await serveAndConnect(createGpio());
    expect(await client.read16(Region.CONFIG, 0)).toBe(0x1b36);
    expect(await client.read16(Region.CONFIG, 2)).toBe(0x1101);
    expect(await client.read8(Region.CONFIG, 0x3d)).toBe(1);
    const bar = await client.getRegionInfo(BAR0);
    expect(bar.size).toBe(256);
    await client.write32(Region.CONFIG, 0x10, 0xffffffff);
    expect(await client.read32(Region.CONFIG, 0x10)).toBe(0xffffff01); // I/O space
  });

  test('outputs: the guest writes, the device sees', async () => {
    const gpio = new GpioCard();
    const seen: number[] = [];
    gpio.onOutputs = (levels) => seen.push(levels);
    const { client } = await serveAndConnect(gpio);
    await client.write16(BAR0, GpioRegister.OUTPUT, 0xa5a5);
    expect(gpio.outputs).toBe(0xa5a5);
    expect(await client.read16(BAR0, GpioRegister.OUTPUT)).toBe(0xa5a5);
    await client.write8(BAR0, GpioRegister.OUTPUT + 1, 0x01);
    expect(seen).toEqual([0xa5a5, 0x01a5]);
  });

  test('inputs: set from TypeScript, read by the guest; the register is read-only', async () => {
    const gpio = new GpioCard();
    const { client } = await serveAndConnect(gpio);
    gpio.setInputs(0x8001);
    expect(await client.read16(BAR0, GpioRegister.INPUT)).toBe(0x8001);
    gpio.setInput(3, true);
    gpio.setInput(15, false);
    expect(await client.read16(BAR0, GpioRegister.INPUT)).toBe(0x0009);
    await client.write16(BAR0, GpioRegister.INPUT, 0xffff);
    expect(gpio.inputs).toBe(0x0009);
  });

  test('INTx when an enabled input changes; status is write-1-to-clear', async () => {
    const gpio = new GpioCard();
    const { client } = await serveAndConnect(gpio);
    const [irq] = await client.enableInterrupts('intx');

    gpio.setInput(0, true); // not enabled: no interrupt
    expect(irq.take()).toBe(0);
    expect(await client.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0);

    await client.write16(BAR0, GpioRegister.IRQ_ENABLE, 0x0006);
    gpio.setInput(1, true);
    expect(await irq.wait(1000)).toBe(1);
    expect(await client.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0x0002);
    gpio.setInput(1, true); // no change: no interrupt
    gpio.setInput(2, true);
    expect(await irq.wait(1000)).toBe(1);
    expect(await client.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0x0006);

    await client.write16(BAR0, GpioRegister.IRQ_STATUS, 0x0002);
    expect(await client.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0x0004);
    await client.write16(BAR0, GpioRegister.IRQ_STATUS, 0xffff);
    expect(await client.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0);

    gpio.setInput(1, false); // falling edges count too
    expect(await irq.wait(1000)).toBe(1);
  });

  test('a reset clears outputs and enables, not the input levels', async () => {
    const gpio = new GpioCard();
    const { client } = await serveAndConnect(gpio);
    gpio.setInputs(0x00f0);
    await client.write16(BAR0, GpioRegister.OUTPUT, 0x1234);
    await client.write16(BAR0, GpioRegister.IRQ_ENABLE, 0xffff);
    await client.reset();
    expect(await client.read16(BAR0, GpioRegister.OUTPUT)).toBe(0);
    expect(await client.read16(BAR0, GpioRegister.IRQ_ENABLE)).toBe(0);
    expect(await client.read16(BAR0, GpioRegister.INPUT)).toBe(0x00f0);
  });
});

test('the GPIO card migrates with its pins, registers and a pending interrupt', async () => {
  const a = new GpioCard();
  const b = new GpioCard();
  const clientA = await connect(serve(a));
  const clientB = await connect(serve(b));
  await clientA.enableInterrupts('intx');
  await clientA.write16(BAR0, GpioRegister.OUTPUT, 0x1234);
  await clientA.write16(BAR0, GpioRegister.IRQ_ENABLE, 0x00ff);
  a.setInputs(0x0003);
  await clientA.setMigrationState('stop');
  a.setInput(4, true); // while stopped: INTx held
  const { interrupts } = await migrate(clientA, clientB);
  expect(await interrupts[0].wait(1000)).toBe(1); // the held INTx, raised by B
  expect(b.inputs).toBe(0x0013);
  expect(b.outputs).toBe(0x1234);
  expect(await clientB.read16(BAR0, GpioRegister.INPUT)).toBe(0x0013);
  expect(await clientB.read16(BAR0, GpioRegister.IRQ_ENABLE)).toBe(0x00ff);
  expect(await clientB.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0x0013);
  b.setInput(5, true);
  expect(await interrupts[0].wait(1000)).toBe(1);
  expect(await clientB.read16(BAR0, GpioRegister.IRQ_STATUS)).toBe(0x0033);
});
