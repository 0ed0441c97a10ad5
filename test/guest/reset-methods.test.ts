/**
 * Which reset Linux picks for a device, and that it reaches the device: a
 * PCI Express function that advertises Function Level Reset gets `flr` and
 * `onReset('flr')`, and the guest reads reset values afterwards. (The bus
 * reset behind a root port is in examples.test.ts; a PM reset is refused at
 * description time, see docs/guests.md.)
 */
import { Guest } from 'vfio-user/guest';
import { PciDevice, RegisterMap, type ResetKind } from 'vfio-user';

import { keyValues, pciToolFiles, report, SHELL_PRELUDE } from './guest-tools';

jest.setTimeout(300000);

/** One read-write scratch register at BAR0 offset 0; FLR through its PCIe capability. */
class FlrScratch extends PciDevice {
  readonly resets: ResetKind[] = [];
  readonly regs = new RegisterMap({ scratch: { offset: 0x0, width: 4, rw: true } });

  constructor() {
    super({
      vendorId: 0x1b36,
      deviceId: 0x0104,
      classCode: 0xff0000,
      pcie: { flr: true },
      bars: [{ index: 0, size: 0x1000, handler: () => this.regs }],
    });
  }

  override onReset(kind: ResetKind): void {
    this.resets.push(kind);
  }
}

test('a function with FLR: Linux picks flr, the reset reaches onReset(flr), registers read their reset values', async () => {
  const device = new FlrScratch();
  const guest = await Guest.start({
    devices: [{ device }],
    files: await pciToolFiles(),
    script: `${SHELL_PRELUDE}
d=$(dev_of 0x1b36 0x0104) || exit 1
echo 1 > $d/enable
pci-tool write $d 0 0 4 0x5a5a5a5a
echo before=$(pci-tool read $d 0 0 4)
echo reset_method=$(cat $d/reset_method)
echo 1 > $d/reset || exit 2
echo after=$(pci-tool read $d 0 0 4)
`,
  });
  try {
    const result = await guest.wait();
    report('FLR scratch device', result);
    expect(`exit ${result.exitCode}\n${result.output}`).toMatch(/^exit 0\n/);
    const v = keyValues(result.output);
    expect(v.before).toBe('0x5a5a5a5a');
    expect(v.reset_method).toMatch(/^flr\b/);
    expect(v.after).toBe('0');
    expect(device.resets).toContain('flr');
  } finally {
    await guest.stop();
  }
});
