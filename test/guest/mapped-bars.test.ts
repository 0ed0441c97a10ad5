/**
 * A device with mapped BARs under a real Linux guest: the guest's reads and
 * writes through the mapped ranges (sysfs resource files, mmapped) reach the
 * device's memory with no REGION_READ / REGION_WRITE at all (the server
 * counts zero), while the register page of the same BAR is trapped to the
 * device's handler as usual.
 */
import type { DmaMapping } from 'vfio-user';
import { Guest } from 'vfio-user/guest';

import { keyValues, pciToolFiles, report, SHELL_PRELUDE } from './guest-tools';
import { MailboxCard, PAGE } from '../fixtures/mailbox-card';

jest.setTimeout(300000);

test('guest accesses to mapped ranges make no messages; the trapped registers still work', async () => {
  const card = new MailboxCard();
  const guest = await Guest.start({
    devices: [{ device: card }],
    files: await pciToolFiles(),
    script: `${SHELL_PRELUDE}
d=$(dev_of 0x1b36 0x11a0) || exit 1
echo 1 > $d/enable
pci-tool write $d 2 0x10 4 0xcafef00d
pci-tool write $d 2 0x1ff8 8 0x0102030405060708
echo bar2_20=$(pci-tool read $d 2 0x20 4)
echo bar2_10=$(pci-tool read $d 2 0x10 4)
pci-tool write $d 0 0x1008 4 0xfeedface
echo bar0_1040=$(pci-tool read $d 0 0x1040 8)
echo id=$(pci-tool read $d 0 0 4)
pci-tool write $d 0 4 4 0xa5a55a5a
echo scratch=$(pci-tool read $d 0 4 4)
echo bar0_start=$(sed -n 1p $d/resource | cut -d' ' -f1)
echo bar2_start=$(sed -n 3p $d/resource | cut -d' ' -f1)
`,
  });
  let messages: number[];
  let values: Record<string, string>;
  try {
    const result = await guest.wait();
    report('mapped BARs', result);
    expect(`exit ${result.exitCode}\n${result.output}`).toMatch(/^exit 0\n/);
    const server = guest.server('vfu0');
    messages = [server.mappedAccessMessages(0), server.mappedAccessMessages(2)];
    values = keyValues(result.output);
    expect(values.bar2_20).toBe('0x12345678');
    expect(values.bar2_10).toBe('0xcafef00d');
    expect(values.bar0_1040).toBe('0x1122334455667788');
    expect(values.id).toBe('0x4d420001');
    expect(values.scratch).toBe('0xa5a55a5a');
  } finally {
    await guest.stop();
  }
  expect(messages).toEqual([0, 0]);
  expect(card.barMemory(2).readUInt32LE(0x10)).toBe(0xcafef00d);
  expect(card.barMemory(2).readBigUInt64LE(0x1ff8)).toBe(0x0102_0304_0506_0708n);
  expect(card.barMemory(0).readUInt32LE(PAGE + 8)).toBe(0xfeedface);
  expect(card.regs.get('scratch')).toBe(0xa5a5_5a5a);
  // QEMU hands the device its own mapped windows as DMA regions, with no fd.
  console.log(`DMA mappings the device saw: ${card.dmaMaps.map((m) => `0x${m.iova.toString(16)}+0x${m.length.toString(16)}${m.mapped ? ' (fd)' : ''}`).join(', ')}`);
  const window = (iova: number): DmaMapping | undefined => card.dmaMaps.find((m) => m.iova === iova);
  expect(window(Number(values.bar0_start) + PAGE)).toMatchObject({ length: PAGE, mapped: false });
  expect(window(Number(values.bar2_start))).toMatchObject({ length: 2 * PAGE, mapped: false });
  expect(window(Number(values.bar0_start))).toBeUndefined(); // the trapped page is not handed over
});
