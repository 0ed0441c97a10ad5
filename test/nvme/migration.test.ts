/**
 * The controller migrates from server A to server B with I/O in flight:
 * writes held in A's file layer at the stop complete on B, the queues,
 * doorbell positions, shadow doorbells and a held Asynchronous Event
 * Request survive, and B goes on serving the same host driver.
 */
import { readFileSync } from 'node:fs';

import { migrate } from 'vfio-user/client';

import { BackingFile, NvmeController, DEFAULT_IDENTITY, NvmeRegister } from '../../examples/nvme';
import { loadControllerState, saveControllerState } from '../../examples/nvme/migration-state';
import { connect, serve } from '../helpers';
import { BAR0, NvmeHost } from './nvme-host';
import { makeDisk, RAM, RAM_SIZE } from './setup';

const WRITES = 16;

function pattern(length: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    data[i] = (i * 13 + seed) & 0xff;
  }
  return data;
}

/** A controller whose file writes wait at a gate until it opens (the file itself is real). */
async function gatedController(disk: string): Promise<{ controller: NvmeController; open: () => void; waiting: () => number }> {
  const file = await BackingFile.open(disk);
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let waiting = 0;
  const write = file.write.bind(file);
  file.write = async (lba, data) => {
    waiting++;
    await gate;
    return write(lba, data);
  };
  return { controller: new NvmeController(file, DEFAULT_IDENTITY), open: () => open(), waiting: () => waiting };
}

describe.each([['shared memory', true], ['DMA messages', false]])('NVMe migration with I/O in flight, %s', (_, shared) => {
  test('queues, doorbells, shadow doorbells and a held event request survive; B completes the writes', async () => {
    const disk = makeDisk();
    const a = await gatedController(disk);
    const b = new NvmeController(await BackingFile.open(disk), DEFAULT_IDENTITY);
    const serverA = serve(a.controller);
    const clientA = await connect(serverA);
    const clientB = await connect(serve(b));
    try {
      const memA = await clientA.mapDma({ iova: RAM, size: RAM_SIZE, shared });
      const memB = await clientB.mapDma({ iova: RAM, size: RAM_SIZE, shared });
      await clientA.enableInterrupts('msix');
      const host = new NvmeHost(clientA, memA);
      await host.enable();
      await host.configureDoorbellBuffer();
      await host.createQueuePair(1, 64, 1);
      const aer = await host.submit(0, { opcode: 0x0c });
      const cids = [];
      for (let i = 0; i < WRITES; i++) {
        const buffer = host.allocate(4096);
        memA.write(buffer, pattern(4096, i));
        cids.push(await host.submit(1, { opcode: 0x01, nsid: 1, prp1: buffer, cdw10: i * 8, cdw12: 7 }));
      }
      const deadline = Date.now() + 5000;
      while (a.waiting() < WRITES && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(a.waiting()).toBe(WRITES);

      let inFlightAtStop = -1;
      let completionsAtStop = -1;
      serverA.on('migration', (state) => {
        if (state === 'stop-copy') {
          inFlightAtStop = a.controller.submissionQueues[1]!.inFlight.size;
          completionsAtStop = a.controller.statistics.completions;
          a.open(); // A's writes reach the file after the stop; their completions are dropped
        }
      });
      const { interrupts } = await migrate(clientA, clientB, { onData: () => memB.write(RAM, memA.read(RAM, RAM_SIZE)) });
      expect(inFlightAtStop).toBe(WRITES);
      host.moveTo(clientB, memB);

      for (const cid of cids) {
        expect((await host.wait(1, cid)).status).toBe(0);
      }
      expect(await interrupts[1].wait(2000)).toBeGreaterThan(0);
      const file = readFileSync(disk);
      for (let i = 0; i < WRITES; i++) {
        expect(file.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, i))).toBe(true);
      }
      // A's writes finished too, after the stop, and it posted none of them.
      expect(a.controller.statistics.completions).toBe(completionsAtStop);
      // B goes on: a read through the same queue, and the held request completes on an event.
      const buffer = host.allocate(4096);
      await host.expectSuccess(1, { opcode: 0x02, nsid: 1, prp1: buffer, cdw10: 8, cdw12: 7 });
      expect(memB.read(buffer, 4096).equals(pattern(4096, 1))).toBe(true);
      await clientB.write32(BAR0, NvmeRegister.DOORBELLS + 8 * 12, 0);
      expect((await host.wait(0, aer)).result).toBe(0x010000);
    } finally {
      await Promise.all([a.controller.namespace.close(), b.namespace.close()]);
    }
  });
});

test('a state that does not hold together is refused and changes nothing', async () => {
  const controller = new NvmeController(await BackingFile.open(makeDisk()), DEFAULT_IDENTITY);
  try {
    const good = JSON.parse(saveControllerState(controller).toString()) as Record<string, unknown>;
    const queue = { id: 1, base: 0x10000, size: 64, interruptsEnabled: true, vector: 1, head: 0, tail: 0, phase: 1, backlog: [] };
    const bad = [
      { ...good, completionQueues: [{ ...queue, size: 5000 }] },
      { ...good, completionQueues: [{ ...queue, head: 64 }] },
      { ...good, completionQueues: [{ ...queue, backlog: [{ sqId: 1, cid: 70000, result: 0, status: 0 }] }] },
      { ...good, submissionQueues: [{ id: 1, base: 0, size: 64, cqId: 3, head: 0, tail: 0, inFlight: [] }] },
      { ...good, completionQueues: [queue], submissionQueues: [{ id: 1, base: 0, size: 64, cqId: 1, head: 0, tail: 0, inFlight: [[1, 'AAAA']] }] },
    ];
    for (const state of bad) {
      expect(() => loadControllerState(controller, Buffer.from(JSON.stringify(state)))).toThrow(RangeError);
    }
    expect(() => loadControllerState(controller, Buffer.from('not json'))).toThrow(SyntaxError);
    expect(controller.completionQueues.length).toBe(0);
    expect(controller.submissionQueues.length).toBe(0);
    loadControllerState(controller, Buffer.from(JSON.stringify({ ...good, completionQueues: [queue] })));
    expect(controller.completionQueues[1]?.size).toBe(64);
  } finally {
    await controller.namespace.close();
  }
});
