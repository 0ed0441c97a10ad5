import { Region } from 'vfio-user';

import { Csts, NvmeRegister, Status } from '../../examples/nvme';
import { BAR0 } from './nvme-host';
import { DISK_SIZE, rig } from './setup';

const DNR = Status.DNR;

describe('NVMe controller registers and state machine', () => {
  test('identity in config space; CAP, VS; enable sets CSTS.RDY, disable clears it', async () => {
    const { client, host } = await rig(true, { enable: false });
    expect(await client.read32(Region.CONFIG, 8) >>> 8).toBe(0x010802);
    expect(await client.findCapability(0x11)).toBeDefined(); // MSI-X
    expect(await client.findCapability(0x10)).toBeDefined(); // PCI Express
    const cap = await client.read64(BAR0, NvmeRegister.CAP);
    expect(Number(cap & 0xffffn)).toBe(1023); // MQES
    expect(Number((cap >> 37n) & 1n)).toBe(1); // NVM command set
    expect(Number((cap >> 32n) & 0xfn)).toBe(0); // DSTRD
    expect(await client.read32(BAR0, NvmeRegister.VS)).toBe(0x00010400);
    await client.write64(BAR0, NvmeRegister.CAP, 0n); // read-only
    expect(await client.read64(BAR0, NvmeRegister.CAP)).toBe(cap);
    await host.enable();
    await client.write32(BAR0, NvmeRegister.CC, 0);
    expect(await client.read32(BAR0, NvmeRegister.CSTS)).toBe(0);
  });

  test('a bad configuration at enable sets CSTS.CFS, not RDY', async () => {
    const { client } = await rig(true, { enable: false });
    await client.write32(BAR0, NvmeRegister.AQA, 0x001f001f);
    await client.write32(BAR0, NvmeRegister.CC, 1 | (5 << 7)); // MPS 128 KiB > MPSMAX
    expect(await client.read32(BAR0, NvmeRegister.CSTS)).toBe(Csts.CFS);
    await client.write32(BAR0, NvmeRegister.CC, 0);
    await client.write32(BAR0, NvmeRegister.AQA, 0); // 1-entry admin queues
    await client.write32(BAR0, NvmeRegister.CC, 1);
    expect(await client.read32(BAR0, NvmeRegister.CSTS)).toBe(Csts.CFS);
  });

  test('a function-level reset (PCI Express Initiate FLR) clears the controller and its registers; it enables again', async () => {
    const { client, host, controller } = await rig(true);
    await host.createQueuePair(1);
    const pcie = (await client.findCapability(0x10))!;
    const control = await client.read16(Region.CONFIG, pcie + 8);
    await client.write16(Region.CONFIG, pcie + 8, control | 0x8000);
    expect(await client.read32(BAR0, NvmeRegister.CC)).toBe(0);
    expect(await client.read32(BAR0, NvmeRegister.CSTS)).toBe(0);
    expect(await client.read64(BAR0, NvmeRegister.ASQ)).toBe(0n);
    expect(controller.submissionQueues.length).toBe(0);
    host.forgetQueues();
    await host.enable();
    await host.createQueuePair(1);
    await host.expectSuccess(1, { opcode: 0x00, nsid: 1 });
  });

  test('INTMS / INTMC set and clear mask bits; shutdown reports SHST complete', async () => {
    const { client, host } = await rig(false);
    await client.write32(BAR0, NvmeRegister.INTMS, 0x5);
    await client.write32(BAR0, NvmeRegister.INTMC, 0x1);
    expect(await client.read32(BAR0, NvmeRegister.INTMS)).toBe(0x4);
    const cc = await client.read32(BAR0, NvmeRegister.CC);
    await client.write32(BAR0, NvmeRegister.CC, cc | (1 << 14));
    await host.waitStatus(Csts.SHST_MASK, Csts.SHST_COMPLETE);
  });
});

describe.each([['shared memory', true], ['DMA messages', false]])('NVMe admin commands, %s', (_, shared) => {
  test('Identify controller, namespace, active namespace list, descriptors; others are Invalid Field', async () => {
    const { host, controller } = await rig(shared);
    const data = host.allocate(4096);
    await host.expectSuccess(0, { opcode: 0x06, prp1: data, cdw10: 1 });
    const id = host.memory.read(data, 4096);
    expect(id.toString('ascii', 4, 24).trim()).toBe(controller.identity.serial);
    expect(id.toString('ascii', 24, 64).trim()).toBe(controller.identity.model);
    expect(id.toString('ascii', 64, 72).trim()).toBe(controller.identity.firmware);
    expect(id.readUInt32LE(516)).toBe(1); // NN
    expect(id.readUInt16LE(256) & 0x100).toBe(0x100); // Doorbell Buffer Config
    await host.expectSuccess(0, { opcode: 0x06, prp1: data, cdw10: 0, nsid: 1 });
    expect(host.memory.read(data, 8).readBigUInt64LE(0)).toBe(BigInt(DISK_SIZE / 512));
    await host.expectSuccess(0, { opcode: 0x06, prp1: data, cdw10: 2, nsid: 0 });
    expect([...host.memory.read(data, 8)]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    await host.expectSuccess(0, { opcode: 0x06, prp1: data, cdw10: 3, nsid: 1 });
    expect(host.memory.read(data, 2)).toEqual(Buffer.from([2, 16]));
    expect((await host.command(0, { opcode: 0x06, prp1: data, cdw10: 0x10 })).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await host.command(0, { opcode: 0x06, prp1: data, cdw10: 0, nsid: 2 })).status).toBe(Status.INVALID_NAMESPACE | DNR);
    expect((await host.command(0, { opcode: 0x06, prp1: data, cdw10: 3, nsid: 0 })).status).toBe(Status.INVALID_NAMESPACE | DNR);
    expect((await host.command(0, { opcode: 0x06, prp1: data + 1, cdw10: 1 })).status).toBe(Status.PRP_OFFSET_INVALID | DNR);
    expect((await host.command(0, { opcode: 0x06, prp1: 0x7000_0000, cdw10: 1 })).status).toBe(Status.DATA_TRANSFER_ERROR);
    expect((await host.command(0, { opcode: 0x06, prp1: data, cdw10: 1, flags: 0x40 })).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await host.command(0, { opcode: 0x99 })).status).toBe(Status.INVALID_OPCODE | DNR);
  });

  test('Get / Set Features: number of queues, write cache, unsupported and unsaveable features', async () => {
    const { host } = await rig(shared);
    expect((await host.expectSuccess(0, { opcode: 0x09, cdw10: 0x07, cdw11: 0x00030003 })).result).toBe(0x000f000f);
    expect((await host.command(0, { opcode: 0x09, cdw10: 0x07, cdw11: 0xffff })).status).toBe(Status.INVALID_FIELD | DNR);
    await host.expectSuccess(0, { opcode: 0x09, cdw10: 0x06, cdw11: 0 });
    expect((await host.expectSuccess(0, { opcode: 0x0a, cdw10: 0x06 })).result).toBe(0);
    expect((await host.expectSuccess(0, { opcode: 0x0a, cdw10: 0x106 })).result).toBe(1); // default
    expect((await host.command(0, { opcode: 0x09, cdw10: 0x80 })).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await host.command(0, { opcode: 0x09, cdw10: 0x80000006, cdw11: 1 })).status).toBe(0x10d | DNR);
    expect((await host.command(0, { opcode: 0x09, cdw10: 0x02, cdw11: 3 })).status).toBe(Status.INVALID_FIELD | DNR);
  });

  test('Get Log Page: error information, SMART, firmware slot; unknown page and bad offsets refused', async () => {
    const { host, controller } = await rig(shared);
    const data = host.allocate(4096);
    const dwords = (bytes: number): number => ((bytes / 4 - 1) << 16);
    await host.expectSuccess(0, { opcode: 0x02, prp1: data, cdw10: dwords(256) | 0x01, nsid: 0xffffffff });
    await host.expectSuccess(0, { opcode: 0x02, prp1: data, cdw10: dwords(512) | 0x02, nsid: 0xffffffff });
    expect(host.memory.read(data + 3, 1)[0]).toBe(100); // available spare
    await host.expectSuccess(0, { opcode: 0x02, prp1: data, cdw10: dwords(512) | 0x03 });
    expect(host.memory.read(data, 16).toString('ascii', 8, 16).trim()).toBe(controller.identity.firmware);
    await host.expectSuccess(0, { opcode: 0x02, prp1: data, cdw10: dwords(8) | 0x03, cdw12: 8 }); // offset
    expect(host.memory.read(data, 8).toString('ascii').trim()).toBe(controller.identity.firmware);
    expect((await host.command(0, { opcode: 0x02, prp1: data, cdw10: dwords(512) | 0x05 })).status).toBe(Status.INVALID_LOG_PAGE | DNR);
    expect((await host.command(0, { opcode: 0x02, prp1: data, cdw10: dwords(8) | 0x02, cdw12: 2 })).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await host.command(0, { opcode: 0x02, prp1: data, cdw10: dwords(8) | 0x02, cdw12: 4096 })).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await host.command(0, { opcode: 0x02, prp1: data, cdw10: dwords(8) | 0x02, nsid: 5 })).status).toBe(Status.INVALID_NAMESPACE | DNR);
  });

  test('Create / Delete I/O queues, with every bad field answered', async () => {
    const { host, controller } = await rig(shared);
    const base = host.allocate(64 * 64);
    const create = (opcode: number, cdw10: number, cdw11: number, prp1 = base): Promise<{ status: number }> =>
      host.command(0, { opcode, prp1, cdw10, cdw11 });
    expect((await create(0x05, (63 << 16) | 0, 0x3)).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR);
    expect((await create(0x05, (63 << 16) | 17, 0x3)).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR);
    expect((await create(0x05, (0 << 16) | 1, 0x3)).status).toBe(Status.INVALID_QUEUE_SIZE | DNR);
    expect((await create(0x05, (1024 << 16) | 1, 0x3)).status).toBe(Status.INVALID_QUEUE_SIZE | DNR);
    expect((await create(0x05, (63 << 16) | 1, 0x2)).status).toBe(Status.INVALID_FIELD | DNR); // not contiguous
    expect((await create(0x05, (63 << 16) | 1, (17 << 16) | 0x3)).status).toBe(Status.INVALID_INTERRUPT_VECTOR | DNR);
    expect((await create(0x05, (63 << 16) | 1, 0x3, base + 8)).status).toBe(Status.INVALID_FIELD | DNR);
    expect((await create(0x01, (63 << 16) | 1, (1 << 16) | 1)).status).toBe(Status.COMPLETION_QUEUE_INVALID | DNR);
    await host.createQueuePair(1);
    expect((await create(0x05, (63 << 16) | 1, 0x3)).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR); // exists
    expect((await create(0x01, (63 << 16) | 2, (0 << 16) | 1)).status).toBe(Status.COMPLETION_QUEUE_INVALID | DNR);
    expect((await host.command(0, { opcode: 0x04, cdw10: 1 })).status).toBe(Status.INVALID_QUEUE_DELETION | DNR);
    expect((await host.command(0, { opcode: 0x00, cdw10: 5 })).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR);
    expect((await host.command(0, { opcode: 0x00, cdw10: 0 })).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR);
    await host.expectSuccess(0, { opcode: 0x00, cdw10: 1 });
    await host.expectSuccess(0, { opcode: 0x04, cdw10: 1 });
    expect(controller.submissionQueues[1]).toBeUndefined();
    expect((await host.command(0, { opcode: 0x04, cdw10: 1 })).status).toBe(Status.INVALID_QUEUE_IDENTIFIER | DNR);
  });

  test('Asynchronous Event Requests are held; a bad doorbell completes one; the limit is AERL + 1; Abort answers', async () => {
    const { host, client } = await rig(shared);
    const held = [];
    for (let i = 0; i < 4; i++) {
      held.push(await host.submit(0, { opcode: 0x0c }));
    }
    const over = await host.command(0, { opcode: 0x0c });
    expect(over.status).toBe(Status.ASYNC_EVENT_LIMIT_EXCEEDED | DNR);
    // The controller takes admin commands in order, and the refusal above
    // came after all four: an AER answered at once would already be posted.
    expect(await host.reapPosted(0)).toEqual([]);
    expect((await host.expectSuccess(0, { opcode: 0x08, cdw10: (held[0] << 16) | 0 })).result & 1).toBe(1);
    await client.write32(BAR0, NvmeRegister.DOORBELLS + 8 * 9, 1); // SQ 9 does not exist
    const event = await host.wait(0, held[0]);
    expect(event).toMatchObject({ status: 0, result: 0x010000 }); // error event, invalid doorbell register, log 01h
    await client.write32(BAR0, NvmeRegister.DOORBELLS, 500); // past the 32-entry admin queue
    expect((await host.wait(0, held[1])).result).toBe(0x010100);
    // The controller kept serving.
    await host.expectSuccess(0, { opcode: 0x0a, cdw10: 0x07 });
  });
});
