import { readFileSync } from 'node:fs';

import { Command, type Message } from 'vfio-user/client';

import { NvmeRegister, Status } from '../../examples/nvme';
import { BAR0, PAGE, u64, type NvmeHost } from './nvme-host';
import { rig } from './setup';

const DNR = Status.DNR;
const READ = 0x02;
const WRITE = 0x01;

function pattern(length: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    data[i] = (i * 31 + seed) & 0xff;
  }
  return data;
}

/** A read or write of `blocks` 512-byte blocks at `lba` through a fresh buffer. */
function transfer(host: NvmeHost, opcode: number, lba: number, blocks: number): { buffer: number; fields: Parameters<NvmeHost['submit']>[1] } {
  const buffer = host.allocate(blocks * 512);
  return { buffer, fields: { opcode, nsid: 1, ...host.prps(buffer, blocks * 512), cdw10: lba, cdw12: blocks - 1 } };
}

describe.each([['shared memory', true], ['DMA messages', false]])('NVMe I/O commands, %s', (_, shared) => {
  test('Write then Read through PRP1, PRP2 and PRP lists land in the file and come back', async () => {
    const { host, disk } = await rig(shared);
    await host.createQueuePair(1);
    for (const [lba, blocks] of [[0, 1], [9, 8], [100, 16], [300, 128]]) {
      const data = pattern(blocks * 512, lba);
      const write = transfer(host, WRITE, lba, blocks);
      host.memory.write(write.buffer, data);
      await host.expectSuccess(1, write.fields);
      expect(readFileSync(disk).subarray(lba * 512, (lba + blocks) * 512).equals(data)).toBe(true);
      const read = transfer(host, READ, lba, blocks);
      await host.expectSuccess(1, read.fields);
      expect(host.memory.read(read.buffer, blocks * 512).equals(data)).toBe(true);
    }
    // A buffer starting mid-page: PRP1 with an offset, the rest in PRP2.
    const buffer = host.allocate(2 * PAGE);
    await host.expectSuccess(1, { opcode: READ, nsid: 1, prp1: buffer + 0x200, prp2: buffer + PAGE, cdw10: 9, cdw12: 7 });
    expect(host.memory.read(buffer + 0x200, 4096).equals(pattern(4096, 9))).toBe(true);
  });

  test('Flush, Write Zeroes, Dataset Management deallocate (reads zeros after)', async () => {
    const { host, disk } = await rig(shared);
    await host.createQueuePair(1);
    await host.expectSuccess(1, { opcode: 0x00, nsid: 1 });
    await host.expectSuccess(1, { opcode: 0x00, nsid: 0xffffffff });
    await host.expectSuccess(1, { opcode: 0x08, nsid: 1, cdw10: 10, cdw12: 3 });
    const ranges = host.allocate(32);
    host.memory.write(ranges, Buffer.concat([Buffer.alloc(4), Buffer.from([2, 0, 0, 0]), u64(40), Buffer.alloc(4), Buffer.from([1, 0, 0, 0]), u64(50)]));
    await host.expectSuccess(1, { opcode: 0x09, nsid: 1, prp1: ranges, cdw10: 1, cdw11: 1 << 2 });
    const file = readFileSync(disk);
    const zeroed = (lba: number, blocks: number): boolean => file.subarray(lba * 512, (lba + blocks) * 512).every((b) => b === 0);
    expect([zeroed(10, 4), zeroed(40, 2), zeroed(50, 1)]).toEqual([true, true, true]);
    expect([zeroed(9, 1), zeroed(14, 1), zeroed(42, 1), zeroed(51, 1)]).toEqual([false, false, false, false]);
    const read = transfer(host, READ, 40, 2);
    host.memory.write(read.buffer, Buffer.alloc(1024, 0xee));
    await host.expectSuccess(1, read.fields);
    expect(host.memory.read(read.buffer, 1024).every((b) => b === 0)).toBe(true);
  });

  test('bad I/O: namespace, LBA range, transfer size, PRP alignment and lists, unmapped memory, opcode, SGL, CID conflict', async () => {
    const { host, disk } = await rig(shared);
    await host.createQueuePair(1);
    const before = readFileSync(disk);
    const blocks = 8192; // the 4 MiB file
    const buffer = host.allocate(16 * PAGE);
    const status = async (fields: Parameters<NvmeHost['submit']>[1]): Promise<number> => (await host.command(1, fields)).status;
    expect(await status({ opcode: READ, nsid: 2, prp1: buffer })).toBe(Status.INVALID_NAMESPACE | DNR);
    expect(await status({ opcode: WRITE, nsid: 0, prp1: buffer })).toBe(Status.INVALID_NAMESPACE | DNR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, cdw10: blocks })).toBe(Status.LBA_OUT_OF_RANGE | DNR);
    expect(await status({ opcode: WRITE, nsid: 1, prp1: buffer, cdw10: blocks - 1, cdw12: 1 })).toBe(Status.LBA_OUT_OF_RANGE | DNR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, cdw11: 1 })).toBe(Status.LBA_OUT_OF_RANGE | DNR); // LBA 2^32
    expect(await status({ opcode: 0x08, nsid: 1, cdw10: blocks - 2, cdw12: 2 })).toBe(Status.LBA_OUT_OF_RANGE | DNR);
    expect(await status({ opcode: WRITE, nsid: 1, prp1: buffer, cdw12: 4095 })).toBe(Status.INVALID_FIELD | DNR); // 2 MiB > MDTS
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer + 2 })).toBe(Status.PRP_OFFSET_INVALID | DNR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, prp2: buffer + PAGE + 8, cdw12: 15 })).toBe(Status.PRP_OFFSET_INVALID | DNR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, prp2: buffer + 4, cdw12: 31 })).toBe(Status.PRP_OFFSET_INVALID | DNR); // list not qword-aligned
    const list = host.allocate(PAGE);
    host.memory.write(list, Buffer.concat([u64(buffer + PAGE), u64(buffer + 2 * PAGE + 0x10), u64(buffer + 3 * PAGE)]));
    expect(await status({ opcode: WRITE, nsid: 1, prp1: buffer, prp2: list, cdw12: 31 })).toBe(Status.PRP_OFFSET_INVALID | DNR);
    host.memory.write(list, Buffer.concat([u64(buffer + PAGE), u64(0x7000_0000), u64(buffer + 3 * PAGE)]));
    expect(await status({ opcode: WRITE, nsid: 1, prp1: buffer, prp2: list, cdw12: 31 })).toBe(Status.DATA_TRANSFER_ERROR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, prp2: 0x7000_0000, cdw12: 31 })).toBe(Status.DATA_TRANSFER_ERROR);
    expect(await status({ opcode: READ, nsid: 1, prp1: 0x7000_0000 })).toBe(Status.DATA_TRANSFER_ERROR);
    expect(await status({ opcode: 0x7f, nsid: 1 })).toBe(Status.INVALID_OPCODE | DNR);
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, flags: 0x40 })).toBe(Status.INVALID_FIELD | DNR); // SGL
    expect(await status({ opcode: READ, nsid: 1, prp1: buffer, flags: 0x01 })).toBe(Status.INVALID_FIELD | DNR); // fused
    // Two commands with one ID in flight: the second is refused, the first completes.
    const first = transfer(host, WRITE, 0, 128);
    await host.submitAll(1, [{ ...first.fields, cid: 77 }, { opcode: 0x00, nsid: 1, cid: 77 }]);
    const statuses = [(await host.wait(1, 77)).status, (await host.wait(1, 77)).status].sort();
    expect(statuses).toEqual([Status.SUCCESS, Status.COMMAND_ID_CONFLICT | DNR]);
    // Nothing but the one good write changed the file.
    const after = readFileSync(disk);
    expect(after.subarray(128 * 512).equals(before.subarray(128 * 512))).toBe(true);
  });

  test('MSI-X: each CQ signals its own vector; INTx when MSI-X is off', async () => {
    const { host, client } = await rig(false);
    const lines = await client.enableInterrupts('msix');
    await host.createQueuePair(1, 16, 1);
    await host.createQueuePair(2, 16, 5);
    lines.forEach((line) => line.take());
    await host.expectSuccess(2, { opcode: 0x00, nsid: 1 });
    expect(await lines[5].wait(1000)).toBeGreaterThan(0);
    expect(lines[1].take()).toBe(0);
    await host.expectSuccess(1, { opcode: 0x00, nsid: 1 });
    expect(await lines[1].wait(1000)).toBeGreaterThan(0);
    await client.disableInterrupts('msix');
    await client.writeConfig((await client.findCapability(0x11))! + 3, Buffer.from([0])); // MSI-X Enable off
    const [intx] = await client.enableInterrupts('intx');
    await host.expectSuccess(0, { opcode: 0x0a, cdw10: 0x07 });
    expect(await intx.wait(1000)).toBeGreaterThan(0);
  });
});

describe('NVMe queues under load', () => {
  test('a full CQ holds completions until the host frees room; SQ head reported; ring wraps with the phase tag', async () => {
    const { host } = await rig(true);
    await host.createQueuePair(1, 4, 1);
    for (let round = 0; round < 5; round++) {
      const cids = [];
      for (let i = 0; i < 3; i++) {
        cids.push(await host.submit(1, { opcode: 0x00, nsid: 1 }));
      }
      for (const cid of cids) {
        expect((await host.wait(1, cid)).sqId).toBe(1);
      }
    }
  });

  test('Doorbell Buffer Config: a busy queue takes submissions without doorbell messages; an idle one is rung', async () => {
    const counts: Array<{ burst: number; oneByOne: number }> = [];
    for (const buffered of [false, true]) {
      const { host, controller, disk } = await rig(true);
      if (buffered) {
        await host.configureDoorbellBuffer();
      }
      await host.createQueuePair(1, 64, 1);
      const writes = Array.from({ length: 48 }, (_, i) => {
        const write = transfer(host, WRITE, i * 8, 8);
        host.memory.write(write.buffer, pattern(4096, i));
        return write.fields;
      });
      const before = controller.statistics.doorbellWrites;
      const cids = await host.submitPosted(1, writes);
      const burst = controller.statistics.doorbellWrites - before;
      for (const cid of cids) {
        expect((await host.wait(1, cid)).status).toBe(0);
      }
      const file = readFileSync(disk);
      for (let i = 0; i < 48; i++) {
        expect(file.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, i))).toBe(true);
      }
      // One at a time: the queue is idle at every submission, so each one rings.
      const start = controller.statistics.doorbellWrites;
      for (let round = 0; round < 8; round++) {
        const [cid] = await host.submitPosted(1, [{ opcode: 0x00, nsid: 1 }]);
        await host.wait(1, cid);
      }
      counts.push({ burst, oneByOne: controller.statistics.doorbellWrites - start });
    }
    expect(counts[0].burst).toBe(48);
    expect(counts[1].burst).toBe(1);
    expect(counts[1].oneByOne).toBeGreaterThanOrEqual(8);
  });

  test('DMA messages: a doorbell rung while the controller rereads the shadow tail is not lost', async () => {
    const { host, client } = await rig(false);
    await host.configureDoorbellBuffer();
    await host.createQueuePair(1, 64, 1);
    const { doorbells, eventIndexes } = host.doorbellBuffer!;
    // Once the drained queue's event index is written, the next read of the
    // shadow tail is the controller's last look: the host submits then, and
    // rings, since the event index asks it to (as a guest CPU may).
    const served = client as unknown as { serveCommand(message: Message): Buffer };
    const serve = served.serveCommand.bind(client);
    let armed = false;
    let late: Promise<number[]> | undefined;
    served.serveCommand = (message) => {
      const iova = Number(message.payload.readBigUInt64LE(0));
      if (message.header.command === Command.DMA_WRITE && iova === eventIndexes + 8) {
        armed = late === undefined;
      } else if (armed && message.header.command === Command.DMA_READ && iova === doorbells + 8) {
        armed = false;
        late = host.submitPosted(1, [{ opcode: 0x00, nsid: 1 }]);
      }
      return serve(message);
    };
    const [first] = await host.submitPosted(1, [{ opcode: 0x00, nsid: 1 }]);
    expect((await host.wait(1, first)).status).toBe(0);
    for (let i = 0; i < 100 && late === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const [second] = await late!;
    expect((await host.wait(1, second, 2000)).status).toBe(0);
  });

  test('with the doorbell buffer turned off: OACS bit 8 clear, the command is an invalid opcode, every submission rings', async () => {
    const { host, controller } = await rig(true, { controller: { doorbellBuffer: false } });
    const data = host.allocate(4096);
    await host.expectSuccess(0, { opcode: 0x06, prp1: data, cdw10: 1 });
    expect(host.memory.read(data, 4096).readUInt16LE(256) & 0x100).toBe(0);
    const page = host.allocate(PAGE);
    expect((await host.command(0, { opcode: 0x7c, prp1: page, prp2: host.allocate(PAGE) })).status).toBe(Status.INVALID_OPCODE | DNR);
    expect(controller.doorbellBuffer).toBeUndefined();
    await host.createQueuePair(1, 64, 1);
    const before = controller.statistics.doorbellWrites;
    const cids = await host.submitPosted(1, Array.from({ length: 4 }, () => ({ opcode: 0x00, nsid: 1 })));
    expect(controller.statistics.doorbellWrites - before).toBe(4);
    for (const cid of cids) {
      expect((await host.wait(1, cid)).status).toBe(0);
    }
  });

  test('Doorbell Buffer Config refuses unaligned buffers', async () => {
    const { host } = await rig(false);
    const page = host.allocate(PAGE);
    expect((await host.command(0, { opcode: 0x7c, prp1: page + 8, prp2: page })).status).toBe(Status.INVALID_FIELD | DNR);
  });

  test('controller reset with I/O in flight: nothing from before is posted, the controller comes back', async () => {
    const { host, client, controller } = await rig(false);
    await host.createQueuePair(1, 64, 1);
    for (let i = 0; i < 32; i++) {
      await host.submit(1, transfer(host, WRITE, i * 8, 8).fields);
    }
    await host.submit(0, { opcode: 0x0c }); // held, then dropped by the reset
    await client.write32(BAR0, NvmeRegister.CC, 0);
    expect(await client.read32(BAR0, NvmeRegister.CSTS)).toBe(0);
    expect(controller.submissionQueues.length).toBe(0);
    host.forgetQueues();
    await host.enable();
    await host.createQueuePair(1, 64, 1);
    const read = transfer(host, READ, 0, 8);
    await host.expectSuccess(1, read.fields);
    // The writes finish on the backing file's own schedule, with no later
    // event to wait for, so a late completion is watched for a while.
    expect(await host.reapFor(0, 50)).toEqual([]); // the held request was dropped, not completed
    expect(await host.reapFor(1, 50)).toEqual([]); // so were the writes in flight
  });

  test('Delete I/O SQ with commands in flight completes them as aborted', async () => {
    const { host } = await rig(false);
    await host.createQueuePair(1, 64, 1);
    const cids = [];
    for (let i = 0; i < 16; i++) {
      cids.push(await host.submit(1, transfer(host, WRITE, i * 128, 128).fields));
    }
    await host.expectSuccess(0, { opcode: 0x00, cdw10: 1 });
    const statuses = new Set<number>();
    for (const cid of cids) {
      statuses.add((await host.wait(1, cid)).status);
    }
    expect([...statuses].every((s) => s === Status.SUCCESS || s === Status.ABORTED_SQ_DELETION)).toBe(true);
    await host.expectSuccess(0, { opcode: 0x04, cdw10: 1 });
  });
});
