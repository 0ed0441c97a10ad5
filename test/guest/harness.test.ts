/**
 * The guest harness itself: a script's output and exit status come back,
 * files and modules reach the guest, a device from this process is seen by
 * the guest's PCI core, and a guest that does not finish is reported with
 * its console and torn down.
 */
import { PciDevice } from 'vfio-user';

import { Guest, GuestError, runGuest } from 'vfio-user/guest';

jest.setTimeout(300000);

class Blank extends PciDevice {
  constructor() {
    super({ vendorId: 0x1af4, deviceId: 0x10f0, classCode: 0xff0000, bars: [{ index: 0, size: 0x1000, handler: { read: (_o, d) => d.fill(0x5a), write: () => undefined } }] });
  }
}

test('a script runs with its files and modules, its output and exit status come back', async () => {
  const result = await runGuest({
    modules: ['uio_pci_generic'],
    files: { '/etc/greeting': 'hello from the host\n', '/opt/tool.sh': { data: 'echo tool ran\n', mode: 0o755 } },
    script: 'cat /etc/greeting; /opt/tool.sh; grep -o "^uio_pci_generic\\|^uio " /proc/modules | sort; exit 7',
  });
  expect(result.exitCode).toBe(7);
  expect(result.output).toBe('hello from the host\ntool ran\nuio \nuio_pci_generic\n');
});

test('an in-process device is enumerated by the guest', async () => {
  const result = await runGuest({
    devices: [{ device: new Blank() }],
    script: 'for d in /sys/bus/pci/devices/*; do echo "$(cat $d/vendor):$(cat $d/device)"; done',
  });
  expect(result.exitCode).toBe(0);
  expect(result.output).toContain('0x1af4:0x10f0\n');
});

test('the console talks both ways and a guest past its timeout is reported and removed', async () => {
  const guest = await Guest.start({ script: 'echo ready; read line; echo "got $line"; sleep 1000', timeoutMs: 60000 });
  try {
    await guest.waitForOutput('ready\n');
    guest.send('ping\n');
    await guest.waitForOutput('got ping\n');
  } finally {
    await guest.stop();
  }
  await expect(guest.wait()).rejects.toThrow(GuestError);

  await expect(runGuest({ script: 'sleep 1000', timeoutMs: 8000 })).rejects.toThrow(/did not finish within 8000 ms/);
});

test('a missing kernel is a clear error', async () => {
  await expect(runGuest({ script: 'true', kernel: '/nonexistent/vmlinuz' })).rejects.toThrow(/no guest kernel at \/nonexistent\/vmlinuz/);
});
