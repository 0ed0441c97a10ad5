/**
 * The NVMe example under a real Linux guest: the in-kernel nvme driver
 * binds, reports the controller's identity, sizes the namespace from the
 * file, moves O_DIRECT patterns both ways, and carries an ext2 filesystem
 * through mkfs, mount, write, sync, umount and remount; the host then finds
 * the same bytes and files in the backing file. Both paths to guest memory:
 * shared (memfd) and reached by DMA messages (QEMU's default RAM).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runGuest } from 'vfio-user/guest';

import { createNvmeController, DEFAULT_IDENTITY } from '../../examples/nvme';
import { keyValues, SHELL_PRELUDE } from './guest-tools';

jest.setTimeout(400000);

const DISK_SIZE = 64 << 20;
/** 4 KiB blocks written with O_DIRECT, past the 32 MiB filesystem. */
const PATTERN_BLOCKS = [9000, 12345, 16383];

describe.each([
  ['shared guest memory', true],
  ['guest memory reached by DMA messages', false],
])('Linux nvme driver, %s', (_, sharedMemory) => {
  test('nvme: binds, identity, namespace size, O_DIRECT patterns, ext2 round trip seen on the host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvme-guest-'));
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, '');
    truncateSync(disk, DISK_SIZE);
    const controller = await createNvmeController(disk);
    try {
      const result = await runGuest({
        devices: [{ device: controller }],
        sharedMemory,
        modules: ['ext4'],
        script: `${SHELL_PRELUDE}
d=$(dev_of 0x1234 0x0e4e) || exit 1
for i in $(seq 1 100); do [ -b /dev/nvme0n1 ] && break; sleep 0.2; done
[ -b /dev/nvme0n1 ] || { echo no nvme0n1; exit 2; }
echo driver=$(basename $(readlink $d/driver))
echo sectors=$(cat /sys/block/nvme0n1/size)
echo model=$(cat /sys/class/nvme/nvme0/model)
echo serial=$(cat /sys/class/nvme/nvme0/serial)
echo firmware=$(cat /sys/class/nvme/nvme0/firmware_rev)
for b in ${PATTERN_BLOCKS.join(' ')}; do
  yes "nvme block $b" | head -c 4096 > /tmp/w$b
  dd if=/tmp/w$b of=/dev/nvme0n1 bs=4096 seek=$b count=1 oflag=direct 2>/dev/null || exit 3
done
for b in ${PATTERN_BLOCKS.join(' ')}; do
  dd if=/dev/nvme0n1 of=/tmp/r$b bs=4096 skip=$b count=1 iflag=direct 2>/dev/null || exit 4
  cmp /tmp/w$b /tmp/r$b && echo pattern$b=ok
done
mke2fs -q -b 1024 /dev/nvme0n1 32768 || exit 5
mkdir -p /mnt
mount -t ext2 /dev/nvme0n1 /mnt || exit 6
echo "hello from the guest" > /mnt/hello.txt
yes "0123456789abcdef" | head -c 300000 > /mnt/big.bin
sync
umount /mnt || exit 7
mount -t ext2 /dev/nvme0n1 /mnt || exit 8
echo hello=$(cat /mnt/hello.txt)
echo big=$(wc -c < /mnt/big.bin)
yes "0123456789abcdef" | head -c 300000 | cmp - /mnt/big.bin && echo big=same
umount /mnt || exit 9
`,
      });
      expect(`exit ${result.exitCode}\n${result.output}`).toMatch(/^exit 0\n/);
      const values = keyValues(result.output);
      expect(values.driver).toBe('nvme');
      expect(Number(values.sectors)).toBe(DISK_SIZE / 512);
      expect(values.model).toBe(DEFAULT_IDENTITY.model);
      expect(values.serial).toBe(DEFAULT_IDENTITY.serial);
      expect(values.firmware).toBe(DEFAULT_IDENTITY.firmware);
      expect(values.hello).toBe('hello from the guest');
      expect(values.big).toBe('same');
      const image = readFileSync(disk);
      for (const block of PATTERN_BLOCKS) {
        expect(values[`pattern${block}`]).toBe('ok');
        const expected = Buffer.alloc(4096);
        const line = `nvme block ${block}\n`;
        for (let at = 0; at < 4096; at += line.length) {
          expected.write(line, at, 'ascii');
        }
        expect(image.subarray(block * 4096, (block + 1) * 4096).equals(expected)).toBe(true);
      }
      // The host reads the filesystem in the file with its own e2fsprogs.
      expect(execFileSync('debugfs', ['-R', 'cat /hello.txt', disk], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).toBe('hello from the guest\n');
    } finally {
      await controller.namespace.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
