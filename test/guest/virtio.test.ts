/**
 * Linux's own virtio drivers against the TypeScript virtio devices, in a
 * real guest, with guest RAM shared (memfd) and not shared (DMA messages).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runGuest } from 'vfio-user/guest';

import { VirtioBlk } from '../../examples/virtio-blk';
import { VirtioRng } from '../../examples/virtio-rng';

jest.setTimeout(600000);

const DISK_SIZE = 32 << 20;
const BLOCK = 4096;
/** 4 KiB block numbers of the O_DIRECT patterns, past the 16 MiB file system. */
const PATTERN_BLOCKS = [4096, 5000, 8188];
const PATTERN_SIZE = 4 * BLOCK;

function pattern(seed: number): Buffer {
  const bytes = Buffer.alloc(PATTERN_SIZE);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = (i * 13 + seed * 101 + (i >> 12)) & 0xff;
  }
  return bytes;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vguest-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ['shared guest memory', true],
  ['guest memory reached by DMA messages', false],
])('Linux virtio drivers, %s', (_, sharedMemory) => {
  test('virtio_rng becomes the current hwrng; 64 KiB from /dev/hwrng come from the device', async () => {
    const rng = new VirtioRng();
    const result = await runGuest({
      devices: [{ device: rng }],
      sharedMemory,
      modules: ['virtio_pci', 'virtio_rng'],
      script: [
        'basename $(readlink /sys/bus/pci/devices/*/driver) | grep virtio-pci',
        'cat /sys/class/misc/hw_random/rng_current',
        'head -c 65536 /dev/hwrng > /tmp/random',
        'wc -c < /tmp/random',
        // Random bytes compress poorly; zeros would not.
        'gzip -c /tmp/random | wc -c',
      ].join('\n'),
    });
    expect(result.exitCode).toBe(0);
    const [driver, current, count, compressed] = result.output.trim().split('\n');
    expect(driver).toBe('virtio-pci');
    expect(current).toMatch(/^virtio_rng/);
    expect(Number(count)).toBe(65536);
    expect(Number(compressed)).toBeGreaterThan(65000);
    expect(rng.bytesServed).toBeGreaterThanOrEqual(65536);
  });

  test('virtio_blk: /dev/vda of the file\'s size, O_DIRECT patterns, ext2 written, remounted, checked; the host sees it all', async () => {
    const image = join(dir, `disk.img`);
    writeFileSync(image, Buffer.alloc(DISK_SIZE));
    const blk = new VirtioBlk({ path: image, queues: 2 });
    const files: Record<string, Buffer> = {};
    PATTERN_BLOCKS.forEach((_block, i) => {
      files[`/pattern${i}`] = pattern(i);
    });
    const patternSteps = PATTERN_BLOCKS.map((block, i) => [
      `dd if=/pattern${i} of=/dev/vda bs=${BLOCK} seek=${block} count=4 oflag=direct 2>/dev/null || exit 11`,
      `dd if=/dev/vda of=/tmp/back bs=${BLOCK} skip=${block} count=4 iflag=direct 2>/dev/null || exit 12`,
      `cmp /pattern${i} /tmp/back || exit 13`,
    ].join('\n'));
    try {
      const result = await runGuest({
        devices: [{ device: blk }],
        sharedMemory,
        modules: ['virtio_pci', 'virtio_blk'],
        files,
        script: [
          'cat /sys/block/vda/size',
          ...patternSteps,
          'mke2fs -b 1024 /dev/vda 16384 > /dev/null || exit 20',
          'mkdir -p /mnt',
          'mount -t ext2 /dev/vda /mnt || exit 21',
          'echo "hello from the guest" > /mnt/hello.txt',
          'cp /pattern0 /mnt/pattern.bin',
          'sync',
          'umount /mnt || exit 22',
          'mount -t ext2 /dev/vda /mnt || exit 23',
          'cat /mnt/hello.txt',
          'cmp /pattern0 /mnt/pattern.bin || exit 24',
          'umount /mnt || exit 25',
          'echo done',
        ].join('\n'),
      });
      expect(result.output).toBe(`${DISK_SIZE / 512}\nhello from the guest\ndone\n`);
      expect(result.exitCode).toBe(0);
    } finally {
      blk.close();
    }
    const disk = readFileSync(image);
    PATTERN_BLOCKS.forEach((block, i) => {
      expect(disk.subarray(block * BLOCK, block * BLOCK + PATTERN_SIZE).equals(pattern(i))).toBe(true);
    });
    execFileSync('e2fsck', ['-n', '-f', image], { stdio: 'pipe' });
    const debugfs = (request: string): Buffer => execFileSync('debugfs', ['-R', request, image], { stdio: ['ignore', 'pipe', 'ignore'] });
    expect(debugfs('cat /hello.txt').toString()).toBe('hello from the guest\n');
    expect(debugfs('cat /pattern.bin').equals(pattern(0))).toBe(true);
    expect(blk.counts.ioErrors).toBe(0);
    expect(blk.counts.out).toBeGreaterThan(0);
  });
});
