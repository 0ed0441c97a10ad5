import { PciDevice } from '../../lib';
import { serveAndConnect } from '../helpers';

const base = { vendorId: 0x1b36, deviceId: 0x0140 };

describe('ERR and REQ interrupts', () => {
  test('every device offers one vector of each, as the C library does', async () => {
    const { client } = await serveAndConnect(new PciDevice(base));
    expect((await client.getIrqInfo(3)).count).toBe(1);
    expect((await client.getIrqInfo(4)).count).toBe(1);
  });

  test('signalError and requestRemoval signal the eventfds the client installed, whatever the interrupt mode', async () => {
    const device = new PciDevice({ ...base, msix: { vectors: 1, bar: 0 } });
    const { client } = await serveAndConnect(device);
    expect(device.signalError()).toBe(false); // no eventfd yet
    expect(device.requestRemoval()).toBe(false);
    const err = await client.enableEventInterrupt('err');
    const req = await client.enableEventInterrupt('req');
    expect(device.signalError()).toBe(true);
    expect(await err.wait(2000)).toBe(1);
    expect(req.take()).toBe(0);
    expect(device.requestRemoval()).toBe(true);
    expect(device.requestRemoval()).toBe(true);
    expect(await req.wait(2000)).toBe(2);
    expect(err.take()).toBe(0);
    expect(device.msix(0)).toBe(false); // MSI-X is not enabled: the others are unaffected
  });

  test('after the client disables them, false again; the device keeps serving', async () => {
    const device = new PciDevice(base);
    const { client } = await serveAndConnect(device);
    await client.enableEventInterrupt('req');
    expect(device.requestRemoval()).toBe(true);
    await client.disableInterrupts('req');
    expect(device.requestRemoval()).toBe(false);
    expect(await client.read16(7, 0)).toBe(0x1b36);
  });

  test('not served: false', () => {
    const device = new PciDevice(base);
    expect(device.signalError()).toBe(false);
    expect(device.requestRemoval()).toBe(false);
  });
});
