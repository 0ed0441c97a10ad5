// The client half of system-lib-check.js's DMA check, in a child process:
// an addon built against a system libvfio-user blocks the device's thread
// while it waits for the client to answer DMA_READ / DMA_WRITE, so the client
// must run elsewhere. It maps guest memory without an fd, has the device copy
// from it by messages, and reports what it found to the parent over IPC.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');

const { VfioUserClient, Command, DmaFlag } = require(path.join(process.env.VFIO_USER_LIB, 'client'));
const { REG, JOB, pattern, transform, sameBytes } = require('./system-lib-dma-device');

const SOURCE = 0x100000;
const TARGET = 0x104000;
const READ_ONLY = 0x200000;
const ANSWERED_BY_NOBODY = 0x300000; // mapped by a raw DMA_MAP: the client has no memory there
const LENGTH = 0x2800; // several messages at the client's 4 KiB limit

async function runJob(client, irq, source, target, length) {
  await client.write32(0, REG.SOURCE, source);
  await client.write32(0, REG.TARGET, target);
  await client.write32(0, REG.LENGTH, length);
  await client.write32(0, REG.GO, 1);
  assert.equal(await irq.wait(10000), 1, `no interrupt for the job 0x${source.toString(16)} -> 0x${target.toString(16)}`);
  return client.read32(0, REG.STATUS);
}

async function main() {
  const client = await VfioUserClient.connect(process.env.SOCKET, { maxDataXferSize: 0x1000 });
  const [irq] = await client.enableInterrupts('msi');
  const memory = await client.mapDma({ iova: SOURCE, size: 0x8000, shared: false });
  const readOnly = await client.mapDma({ iova: READ_ONLY, size: 0x1000, shared: false, writable: false });
  memory.write(SOURCE, pattern(LENGTH, 3));
  readOnly.write(READ_ONLY, pattern(0x100, 9));

  assert.equal(await runJob(client, irq, SOURCE, TARGET, LENGTH), JOB.DONE, 'the copy by messages failed');
  sameBytes(memory.read(TARGET, LENGTH), transform(pattern(LENGTH, 3)), 'guest memory does not hold the device\'s write');
  sameBytes(memory.read(SOURCE, LENGTH), pattern(LENGTH, 3), 'the source changed');

  // Refused by the device's checks: the client mapped it read-only.
  assert.equal(await runJob(client, irq, SOURCE, READ_ONLY, 0x100), JOB.FAILED, 'a write to read-only memory succeeded');
  sameBytes(readOnly.read(READ_ONLY, 0x100), pattern(0x100, 9), 'read-only memory changed');

  // Refused by the client's answer to the DMA_READ the library sent.
  const map = Buffer.alloc(32);
  map.writeUInt32LE(32, 0);
  map.writeUInt32LE(DmaFlag.READ | DmaFlag.WRITE, 4);
  map.writeBigUInt64LE(BigInt(ANSWERED_BY_NOBODY), 16);
  map.writeBigUInt64LE(0x1000n, 24);
  await client.request(Command.DMA_MAP, map);
  assert.equal(await runJob(client, irq, ANSWERED_BY_NOBODY, TARGET, 0x100), JOB.FAILED, 'a read the client refused succeeded');

  // The device keeps serving: another copy, the other way round.
  memory.write(TARGET, pattern(0x1800, 5));
  assert.equal(await runJob(client, irq, TARGET, SOURCE, 0x1800), JOB.DONE, 'the copy after the refusals failed');
  sameBytes(memory.read(SOURCE, 0x1800), transform(pattern(0x1800, 5)), 'guest memory does not hold the second write');

  await client.close();
  process.send({ ok: true }, () => process.exit(0));
}

// Without the parent there is nobody to report to.
process.on('disconnect', () => process.exit(1));
main().catch((err) => {
  process.send({ ok: false, error: err.stack || String(err) }, () => process.exit(1));
});
