/**
 * The server dies under a running guest: the guest and QEMU carry on, the
 * guest reads all ones from the device, and a replug (device behind a root
 * port, a new server on a new socket) brings the device back to the guest.
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

import { VfioUserServer } from 'vfio-user';
import { Guest } from 'vfio-user/guest';

import { EduDevice } from '../../examples/edu';
import { keyValues, pciToolFiles, report, SHELL_PRELUDE } from './guest-tools';

jest.setTimeout(300000);

test('a killed server leaves the guest running, reading all ones, and a replug restores the device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vfu-replug-'));
  let revived: VfioUserServer | undefined;
  const guest = await Guest.start({
    devices: [{ device: new EduDevice(), rootPort: true }],
    files: await pciToolFiles(),
    script: `${SHELL_PRELUDE}
d=$(dev_of 0x1234 0x11e8) || exit 1
echo 1 > $d/enable
echo before=$(pci-tool read $d 0 0 4)
echo waiting-for-kill; read line
echo dead=$(pci-tool read $d 0 0 4)
echo waiting-for-replug; read line
for i in $(seq 1 120); do d=$(dev_of 0x1234 0x11e8 2>/dev/null) && break; sleep 1; done
echo 1 > $d/enable
echo after=$(pci-tool read $d 0 0 4)
`,
  });
  try {
    await guest.waitForOutput('waiting-for-kill\n');
    await guest.server('vfu0').close();
    guest.send('go\n');
    await guest.waitForOutput('waiting-for-replug\n');
    const socket = join(dir, 'edu-again.sock');
    revived = new VfioUserServer(new EduDevice(), { socket });
    let reattached = false;
    revived.on('connect', () => {
      reattached = true;
    });
    await guest.replug('vfu0', socket);
    guest.send('go\n');
    const result = await guest.wait();
    report('edu (server killed, then replugged)', result);
    expect(`exit ${result.exitCode}\n${result.output}`).toMatch(/^exit 0\n/);
    const v = keyValues(result.output);
    expect(v.before).toBe('0x10000ed');
    expect(v.dead).toBe('0xffffffff');
    expect(v.after).toBe('0x10000ed');
    expect(reattached).toBe(true);
  } finally {
    await guest.stop();
    await revived?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
