import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { VirtioStatus } from 'vfio-user/virtio';

import { SECTOR_SIZE, VIRTIO_BLK_ID_BYTES, VirtioBlk, VirtioBlkConfig, VirtioBlkFeature, VirtioBlkStatus, VirtioBlkType } from '../../examples/virtio-blk';
import { serveAndConnect } from '../helpers';
import { header, pattern } from './blk-requests';
import { type TestQueue, TestVirtioDriver } from './driver';

const RAM = 0x100000;
const DISK_SIZE = 1 << 20;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vblk-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const devices: VirtioBlk[] = [];
afterEach(() => devices.splice(0).forEach((d) => d.close()));

function diskFile(name: string, size = DISK_SIZE): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(size));
  return path;
}

async function start(options: { readOnly?: boolean; queues?: number; path?: string }, shared: boolean) {
  const blk = new VirtioBlk({ path: options.path ?? diskFile(`disk-${devices.length}-${Date.now()}.img`), readOnly: options.readOnly, queues: options.queues, queueSize: 64 });
  devices.push(blk);
  const { client } = await serveAndConnect(blk);
  const memory = await client.mapDma({ iova: RAM, size: 0x100000, shared });
  const driver = await TestVirtioDriver.attach(client, memory);
  return { blk, client, memory, driver };
}

/** Posts a request and returns its status byte, used length and the data read. */
async function submit(driver: TestVirtioDriver, queue: TestQueue, out: Buffer[], inLengths: number[]): Promise<{ status: number; len: number; data: Buffer }> {
  const head = queue.post({ out, inLengths });
  await queue.kick();
  const [used] = await queue.waitUsed(1);
  expect(used.id).toBe(head);
  const parts = queue.writableOf.get(head)!;
  const bytes = Buffer.concat(parts.map((p) => driver.memory.read(p.address, p.length)));
  return { status: bytes[bytes.length - 1], len: used.len, data: bytes.subarray(0, bytes.length - 1) };
}

describe.each([
  ['shared guest memory', true],
  ['guest memory reached by DMA messages', false],
])('the virtio-blk example, %s', (_, shared) => {
  test('configuration: capacity from the file, size_max, seg_max, blk_size; features', async () => {
    const { driver } = await start({}, shared);
    const features = await driver.deviceFeatures();
    for (const f of [VirtioBlkFeature.SIZE_MAX, VirtioBlkFeature.SEG_MAX, VirtioBlkFeature.BLK_SIZE, VirtioBlkFeature.FLUSH]) {
      expect(features & (1n << BigInt(f))).not.toBe(0n);
    }
    expect(features & (1n << BigInt(VirtioBlkFeature.RO))).toBe(0n);
    const config = await driver.readDeviceConfig(0, VirtioBlkConfig.SIZE);
    expect(config.readBigUInt64LE(VirtioBlkConfig.CAPACITY)).toBe(BigInt(DISK_SIZE / SECTOR_SIZE));
    expect(config.readUInt32LE(VirtioBlkConfig.SIZE_MAX)).toBe(1 << 20);
    expect(config.readUInt32LE(VirtioBlkConfig.SEG_MAX)).toBe(62);
    expect(config.readUInt32LE(VirtioBlkConfig.BLK_SIZE)).toBe(SECTOR_SIZE);
  });

  test('writes and reads patterns at several offsets, in several segments; the host file has the bytes; flush and GET_ID', async () => {
    const path = diskFile(`rw-${shared}.img`);
    const { driver, blk } = await start({ path }, shared);
    const [queue] = await driver.bringUp({ size: 64 });
    for (const [sector, length, seed] of [[0, 512, 1], [7, 4096, 2], [2040, 4096, 3]] as const) {
      const data = pattern(length, seed);
      const write = await submit(driver, queue, [header(VirtioBlkType.OUT, sector), data.subarray(0, 512), data.subarray(512)], [1]);
      expect(write).toMatchObject({ status: VirtioBlkStatus.OK, len: 1 });
      expect(readFileSync(path).subarray(sector * 512, sector * 512 + length).equals(data)).toBe(true);
      const read = await submit(driver, queue, [header(VirtioBlkType.IN, sector)], [length / 2, length / 2, 1]);
      expect(read.status).toBe(VirtioBlkStatus.OK);
      expect(read.len).toBe(length + 1);
      expect(read.data.equals(data)).toBe(true);
    }
    expect((await submit(driver, queue, [header(VirtioBlkType.FLUSH, 0)], [1])).status).toBe(VirtioBlkStatus.OK);
    const id = await submit(driver, queue, [header(VirtioBlkType.GET_ID, 0)], [VIRTIO_BLK_ID_BYTES, 1]);
    expect(id.status).toBe(VirtioBlkStatus.OK);
    expect(id.data.toString('latin1').replace(/\0+$/, '')).toBe('vfio-user-blk');
    expect(blk.counts).toMatchObject({ in: 3, out: 3, flush: 1, getId: 1, ioErrors: 0 });
  });

  test('errors reach the driver as IOERR or UNSUPP and the device keeps serving', async () => {
    const { driver, blk } = await start({}, shared);
    const [queue] = await driver.bringUp({ size: 64 });
    expect((await submit(driver, queue, [header(VirtioBlkType.IN, DISK_SIZE / 512 - 1)], [1024, 1])).status).toBe(VirtioBlkStatus.IOERR);
    expect((await submit(driver, queue, [header(VirtioBlkType.OUT, 0), Buffer.alloc(100)], [1])).status).toBe(VirtioBlkStatus.IOERR);
    expect((await submit(driver, queue, [header(99, 0)], [1])).status).toBe(VirtioBlkStatus.UNSUPP);
    expect((await submit(driver, queue, [header(VirtioBlkType.IN, 0)], [512, 1])).status).toBe(VirtioBlkStatus.OK);
    expect(blk.counts.ioErrors).toBe(2);
    expect(await driver.status() & VirtioStatus.NEEDS_RESET).toBe(0);
  });

  test('a read the file system fails (a directory as backing file) is IOERR', async () => {
    const { driver, blk } = await start({ path: dir, readOnly: true }, shared);
    const [queue] = await driver.bringUp({ size: 64 });
    expect(blk.capacity).toBeGreaterThan(0);
    expect((await submit(driver, queue, [header(VirtioBlkType.IN, 0)], [512, 1])).status).toBe(VirtioBlkStatus.IOERR);
  });

  test('read-only: RO offered, writes are IOERR, reads work', async () => {
    const path = diskFile(`ro-${shared}.img`);
    writeFileSync(path, pattern(DISK_SIZE, 5));
    const { driver } = await start({ path, readOnly: true }, shared);
    expect((await driver.deviceFeatures()) & (1n << BigInt(VirtioBlkFeature.RO))).not.toBe(0n);
    const [queue] = await driver.bringUp({ size: 64, features: 1n << BigInt(VirtioBlkFeature.RO) });
    expect((await submit(driver, queue, [header(VirtioBlkType.OUT, 0), Buffer.alloc(512)], [1])).status).toBe(VirtioBlkStatus.IOERR);
    const read = await submit(driver, queue, [header(VirtioBlkType.IN, 1)], [512, 1]);
    expect(read.data.equals(pattern(DISK_SIZE, 5).subarray(512, 1024))).toBe(true);
  });

  test('multiqueue: MQ and num_queues; many requests in flight on two queues', async () => {
    const path = diskFile(`mq-${shared}.img`);
    const disk = pattern(DISK_SIZE, 9);
    writeFileSync(path, disk);
    const { driver } = await start({ path, queues: 2 }, shared);
    const config = await driver.readDeviceConfig(VirtioBlkConfig.NUM_QUEUES, 2);
    expect(config.readUInt16LE()).toBe(2);
    const queues = await driver.bringUp({ queues: 2, size: 64, features: 1n << BigInt(VirtioBlkFeature.MQ) });
    const heads = queues.map((q, qi) => Array.from({ length: 8 }, (_, i) => q.post({ out: [header(VirtioBlkType.IN, (qi * 8 + i) * 8)], inLengths: [4096, 1] })));
    await Promise.all(queues.map((q) => q.kick()));
    for (const [qi, q] of queues.entries()) {
      const used = await q.waitUsed(8);
      expect(used.map((u) => u.id).sort((a, b) => a - b)).toEqual([...heads[qi]].sort((a, b) => a - b));
      for (const [i, head] of heads[qi].entries()) {
        const [data] = q.writableOf.get(head)!;
        const at = (qi * 8 + i) * 8 * 512;
        expect(driver.memory.read(data.address, 4096).equals(disk.subarray(at, at + 4096))).toBe(true);
      }
    }
  });
});
