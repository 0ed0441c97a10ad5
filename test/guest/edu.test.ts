/**
 * The edu example under a real Linux guest: what the guest's PCI core sees,
 * MMIO through sysfs resource files, DMA both ways at guest-physical
 * addresses, and INTx through the in-tree uio_pci_generic driver: exactly
 * one interrupt per raise, no storm (counted in /proc/interrupts).
 */
import { runGuest } from 'vfio-user/guest';

import { EduDevice } from '../../examples/edu';
import { keyValues, pciToolFiles, SHELL_PRELUDE } from './guest-tools';

jest.setTimeout(300000);

const RAISES = 5;

test('edu: sysfs view, MMIO, DMA both ways and one uio_pci_generic interrupt per raise', async () => {
  const edu = new EduDevice();
  const result = await runGuest({
    devices: [{ device: edu }],
    modules: ['uio_pci_generic'],
    files: await pciToolFiles(),
    script: `${SHELL_PRELUDE}
d=$(dev_of 0x1234 0x11e8) || exit 1
echo class=$(cat $d/class) revision=$(cat $d/revision)
echo resource0=$(head -n 1 $d/resource)
pci-tool caps $d
echo 1 > $d/enable
echo id=$(pci-tool read $d 0 0 4)
pci-tool write $d 0 4 4 0x12345678; echo liveness=$(pci-tool read $d 0 4 4)
pci-tool write $d 0 8 4 10; sleep 1; echo factorial=$(pci-tool read $d 0 8 4)
pci-tool edu-dma $d || exit 2
echo 1234 11e8 > /sys/bus/pci/drivers/uio_pci_generic/new_id
irq=$(cat $d/irq)
echo irqs_before=$(irq_count $irq)
pci-tool uio-irqs $d /dev/uio0 ${RAISES} || exit 3
echo irqs_after=$(irq_count $irq)
`,
  });
  const output = result.output;
  // The whole output in the message when the script failed.
  expect(`exit ${result.exitCode}\n${output}`).toMatch(/^exit 0\n/);
  const values = keyValues(output.replace(/ (?=\w+=)/g, '\n'));
  expect(values.class).toBe('0x00ff00');
  expect(values.revision).toBe('0x10');
  // start end flags: a 1 MiB, 32-bit, non-prefetchable memory BAR.
  const [start, end, flags] = values.resource0.split(' ').map((v) => BigInt(v));
  expect(end - start + 1n).toBe(0x100000n);
  expect(flags & 0x200n).toBe(0x200n); // IORESOURCE_MEM
  expect(flags & 0x2000n).toBe(0n); // not prefetchable
  expect(output).toMatch(/^cap 0x05@/m); // MSI
  expect(values.id).toBe('0x10000ed');
  expect(values.liveness).toBe('0xedcba987');
  expect(values.factorial).toBe('0x375f00');
  expect(output).toContain('to card: 0 of 256 bytes differ\n');
  expect(output).toMatch(/^to RAM at 0x[0-9a-f]+: same$/m);
  expect(edu.dmaError).toBeUndefined();
  for (let i = 0; i < RAISES; i++) {
    expect(output).toContain(`interrupt ${i}: uio event count ${i + 1} (+1)\n`);
  }
  expect(output).toContain('after: quiet\n');
  expect(Number(values.irqs_after) - Number(values.irqs_before)).toBe(RAISES);
});
