/**
 * The gpio and timer examples in one real Linux guest: what the guest sees
 * in sysfs, register access through resource files (gpio's BAR is I/O
 * space, the timer's memory), gpio's INTx through uio_pci_generic when the
 * host changes an input, and a reset from the guest (the timer sits behind
 * a root port, so Linux resets it through the bus) reaching `onReset`.
 */
import { Guest } from 'vfio-user/guest';
import type { ResetKind } from 'vfio-user';

import { GpioCard } from '../../examples/gpio';
import { Timer } from '../../examples/timer';
import { keyValues, pciToolFiles, SHELL_PRELUDE } from './guest-tools';

jest.setTimeout(300000);

class RecordingTimer extends Timer {
  readonly resets: ResetKind[] = [];
  override onReset(kind: ResetKind): void {
    this.resets.push(kind);
    super.onReset(kind);
  }
}

test('gpio and timer: sysfs view, registers, gpio INTx through uio_pci_generic, timer reset through its root port', async () => {
  const gpio = new GpioCard();
  const timer = new RecordingTimer();
  const guest = await Guest.start({
    devices: [{ device: gpio }, { device: timer, rootPort: true }],
    modules: ['uio_pci_generic'],
    files: await pciToolFiles(),
    script: `${SHELL_PRELUDE}
g=$(dev_of 0x1b36 0x1101) || exit 1
t=$(dev_of 0x1b36 0x0100) || exit 1
echo gpio.class=$(cat $g/class)
echo gpio.resource0=$(head -n 1 $g/resource)
echo gpio.pin=$(cat $g/config | dd bs=1 skip=61 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
echo timer.class=$(cat $t/class)
echo timer.resource0=$(head -n 1 $t/resource)
pci-tool caps $t | sed 's/^/timer./'
echo 1 > $g/enable; echo 1 > $t/enable
pci-tool write $g 0 4 2 0xa5a5
echo gpio.output=$(pci-tool read $g 0 4 2)
pci-tool write $g 0 8 2 0x1
echo 1b36 1101 > /sys/bus/pci/drivers/uio_pci_generic/new_id
pci-tool uio-wait /dev/uio0 || exit 2
echo gpio.input=$(pci-tool read $g 0 0 2)
echo gpio.irq_status=$(pci-tool read $g 0 0xc 2)
pci-tool write $g 0 0xc 2 0x1
pci-tool intx-enable $g
echo gpio.irq_status_after=$(pci-tool read $g 0 0xc 2)
pci-tool write $t 0 4 4 123456
echo timer.count=$(pci-tool read $t 0 4 4)
echo timer.reset_method=$(cat $t/reset_method)
echo 1 > $t/reset || exit 3
echo timer.count_after_reset=$(pci-tool read $t 0 4 4)
`,
  });
  try {
    await guest.waitForOutput('uio-waiting\n');
    expect(gpio.outputs).toBe(0xa5a5);
    gpio.setInputs(0x1);
    const result = await guest.wait();
    expect(`exit ${result.exitCode}\n${result.output}`).toMatch(/^exit 0\n/);
    const v = keyValues(result.output);
    expect(v['gpio.class']).toBe('0x088000');
    const [gStart, gEnd, gFlags] = v['gpio.resource0'].split(' ').map((x) => BigInt(x));
    expect(gEnd - gStart + 1n).toBe(256n);
    expect(gFlags & 0x100n).toBe(0x100n); // IORESOURCE_IO
    expect(v['gpio.pin']).toBe('1'); // INTA
    expect(v['gpio.output']).toBe('0xa5a5');
    expect(result.output).toContain('uio event count 1\n');
    expect(v['gpio.input']).toBe('0x1');
    expect(v['gpio.irq_status']).toBe('0x1');
    expect(v['gpio.irq_status_after']).toBe('0');
    expect(v['timer.class']).toBe('0xff0000');
    const [tStart, tEnd, tFlags] = v['timer.resource0'].split(' ').map((x) => BigInt(x));
    expect(tEnd - tStart + 1n).toBe(0x1000n);
    expect(tFlags & 0x200n).toBe(0x200n); // IORESOURCE_MEM
    expect(result.output).toMatch(/^timer\.cap 0x11@/m); // MSI-X
    expect(v['timer.count']).toBe('0x1e240');
    expect(v['timer.reset_method']).toBe('bus');
    expect(v['timer.count_after_reset']).toBe('0');
    expect(timer.resets).toContain('device');
  } finally {
    await guest.stop();
  }
});
