/**
 * Devices served from worker threads: the addon keeps its state per Node
 * environment, so each worker serves its own devices on its own event loop,
 * and a worker that ends closes them without disturbing anyone else.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { buildDist, ROOT } from '../cli/project';
import { connect, socketPath } from '../helpers';

/** The worker: serves a device whose BAR0 offset 0 reads its thread id and offset 4 is scratch. */
const WORKER_SOURCE = `
const { parentPort, threadId, workerData } = require('node:worker_threads');
const { PciDevice, VfioUserServer } = require(workerData.dist);
let scratch = 0;
class ThreadDevice extends PciDevice {
  constructor() {
    super({
      vendorId: 0x1b36, deviceId: 0x11c0, classCode: 0xff0000,
      bars: [{ index: 0, size: 0x100, handler: {
        read: (offset, data) => data.writeUInt32LE(offset === 0 ? threadId : scratch, 0),
        write: (offset, data) => { if (offset === 4) scratch = data.readUInt32LE(0); },
      } }],
    });
  }
}
const server = new VfioUserServer(new ThreadDevice(), { socket: workerData.socket });
server.on('error', (err) => parentPort.postMessage({ error: err.message }));
parentPort.on('message', (message) => {
  if (message === 'close') {
    void server.close().then(() => parentPort.close());
  }
});
parentPort.postMessage({ listening: true });
`;

interface ServingWorker {
  readonly worker: Worker;
  readonly socket: string;
  readonly exited: Promise<number>;
}

async function serveInWorker(): Promise<ServingWorker> {
  const socket = socketPath('worker');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { socket, dist: join(ROOT, 'dist', 'index.js') } });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (message: { listening?: boolean; error?: string }) => {
      if (message.error !== undefined) {
        reject(new Error(`the worker's server: ${message.error}`));
      } else if (message.listening === true) {
        resolve();
      }
    });
  });
  return { worker, socket, exited };
}

beforeAll(() => buildDist(), 120000);

test('a worker thread serves a device; its handlers run on the worker', async () => {
  const { worker, socket, exited } = await serveInWorker();
  const client = await connect(socket);
  expect(await client.read32(0, 0x0)).toBe(worker.threadId);
  await client.write32(0, 0x4, 0xfeedf00d);
  expect(await client.read32(0, 0x4)).toBe(0xfeedf00d);
  await client.close();
  worker.postMessage('close');
  expect(await exited).toBe(0);
});

test('two workers serve two devices at once, each on its own thread', async () => {
  const served = [await serveInWorker(), await serveInWorker()];
  const clients = await Promise.all(served.map(({ socket }) => connect(socket)));
  const ids = await Promise.all(clients.map((client) => client.read32(0, 0x0)));
  expect(ids).toEqual(served.map(({ worker }) => worker.threadId));
  expect(new Set(ids).size).toBe(2);
  // Interleaved traffic: each device keeps its own state.
  await Promise.all(clients.map((client, i) => client.write32(0, 0x4, 0x100 + i)));
  expect(await Promise.all(clients.map((client) => client.read32(0, 0x4)))).toEqual([0x100, 0x101]);
  for (const { worker } of served) {
    worker.postMessage('close');
  }
  await Promise.all(served.map(({ exited }) => exited));
});

test('a worker terminated while a client is attached closes its device; the client sees the connection end', async () => {
  const { worker, socket, exited } = await serveInWorker();
  const client = await connect(socket);
  expect(await client.read32(0, 0x0)).toBe(worker.threadId);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await worker.terminate();
  await exited;
  await closed;
  // This thread's own devices are unaffected: a fresh worker serves again.
  const again = await serveInWorker();
  const next = await connect(again.socket);
  expect(await next.read32(0, 0x0)).toBe(again.worker.threadId);
  again.worker.postMessage('close');
  await again.exited;
});
