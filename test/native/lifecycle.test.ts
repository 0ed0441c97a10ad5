/**
 * Lifetimes the addon must survive: worker threads that create, close or
 * abandon devices, and processes that exit while serving.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';

import { addonCandidates } from '../../lib/native';
import { tempSocket } from './fixture';
import { CMD, dmaMapPayload, WireClient } from './wire';

const addonPath = addonCandidates().find((file) => fs.existsSync(file))!;

/** Plain JS that defines makeDevice(socket, handlers) with the addon. */
const prelude = `
const addon = require(${JSON.stringify(addonPath)});
function makeDevice(socket, handlers) {
  const memory = new ArrayBuffer(64);
  const views = Array.from({ length: 65 }, (_, n) => Buffer.from(memory, 0, n));
  const ctx = new addon.DeviceContext(socket, handlers, views);
  ctx.pciInit(3);
  ctx.setupRegion(0, 0x1000, 7);
  ctx.realize();
  ctx.start();
  return ctx;
}
`;

function startWorker(code: string, workerData: unknown): Worker {
  return new Worker(prelude + code, { eval: true, workerData });
}

function nextMessage(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

function exitCode(worker: Worker): Promise<number> {
  return new Promise((resolve) => worker.once('exit', resolve));
}

describe('worker threads', () => {
  test('a worker serves a device to the main thread and closes it', async () => {
    const socket = tempSocket();
    const worker = startWorker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const ctx = makeDevice(workerData, {
        regionAccess(region, offset, data, isWrite) { if (!isWrite) data.fill(0x42); },
      });
      parentPort.postMessage('ready');
      parentPort.once('message', () => { ctx.close(); parentPort.close(); });
      `,
      socket,
    );
    const exited = exitCode(worker);
    expect(await nextMessage(worker)).toBe('ready');
    const client = await WireClient.connect(socket);
    expect([...(await client.read(0, 0, 2))]).toEqual([0x42, 0x42]);
    worker.postMessage('close');
    await client.closed;
    // Nothing of the device keeps the worker's loop alive after close().
    expect(await exited).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
  });

  test('a worker terminated while serving a client tears its device down', async () => {
    const socket = tempSocket();
    const worker = startWorker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      makeDevice(workerData, { regionAccess(r, o, data) { data.fill(1); } });
      const watcher = new addon.os.FdWatcher(addon.os.eventfd(0, true), () => {});
      watcher.start(true, false);
      parentPort.postMessage('ready');
      `,
      socket,
    );
    expect(await nextMessage(worker)).toBe('ready');
    const client = await WireClient.connect(socket);
    expect([...(await client.read(0, 0, 1))]).toEqual([1]);
    await worker.terminate();
    await client.closed;
    expect(fs.existsSync(socket)).toBe(false);
    client.close();
  });

  test('a worker terminated with a DMA message transfer in flight tears down without calling JS', async () => {
    const socket = tempSocket();
    const worker = startWorker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const ctx = makeDevice(workerData, {
        dmaRegister(iova, length, prot, memory) {
          // No fd: the transfer goes by DMA_READ, which this client never answers.
          ctx.dmaTransfer(iova, new Uint8Array(16), false, () => parentPort.postMessage('done'));
          parentPort.postMessage('started');
        },
      });
      ctx.setupDma(4);
      parentPort.postMessage('ready');
      `,
      socket,
    );
    expect(await nextMessage(worker)).toBe('ready');
    const client = await WireClient.connect(socket);
    const started = nextMessage(worker);
    expect((await client.request(CMD.DMA_MAP, dmaMapPayload(3, 0, 0x10000, 0x1000))).errno).toBe(0);
    expect(await started).toBe('started');
    const messages: unknown[] = [];
    worker.on('message', (m) => messages.push(m));
    await worker.terminate();
    await client.closed;
    expect(messages).toEqual([]);
    expect(fs.existsSync(socket)).toBe(false);
    client.close();
  });

  test('several workers at once, each with its own device', async () => {
    const sockets = [tempSocket(), tempSocket(), tempSocket()];
    const workers = sockets.map((socket, i) =>
      startWorker(
        `
        const { parentPort, workerData } = require('node:worker_threads');
        const ctx = makeDevice(workerData.socket, {
          regionAccess(r, o, data) { data.fill(workerData.value); },
        });
        parentPort.postMessage('ready');
        parentPort.once('message', () => { ctx.close(); parentPort.close(); });
        `,
        { socket, value: 0x10 + i },
      ),
    );
    await Promise.all(workers.map(nextMessage));
    const clients = await Promise.all(sockets.map((socket) => WireClient.connect(socket)));
    const values = await Promise.all(clients.map((c) => c.read(0, 0, 1)));
    expect(values.map((v) => v[0])).toEqual([0x10, 0x11, 0x12]);
    const exits = workers.map(exitCode);
    workers.forEach((w) => w.postMessage('close'));
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);
    clients.forEach((c) => c.close());
  });

  test('process.exit() from a handler inside a worker', async () => {
    const socket = tempSocket();
    const worker = startWorker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      makeDevice(workerData, { regionAccess() { process.exit(7); } });
      parentPort.postMessage('ready');
      `,
      socket,
    );
    const exited = exitCode(worker);
    expect(await nextMessage(worker)).toBe('ready');
    const client = await WireClient.connect(socket);
    const read = client.read(0, 0, 4).catch((err: Error) => err);
    expect(await exited).toBe(7);
    await client.closed;
    expect(await read).toBeInstanceOf(Error);
    expect(fs.existsSync(socket)).toBe(false);
  });
});

describe('process exit', () => {
  function runChild(code: string, socket: string): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(process.execPath, ['-e', prelude + code, socket], {
      encoding: 'utf8',
      timeout: 20000,
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  test("close() in process.on('exit') while a client is connected", () => {
    const socket = tempSocket();
    const result = runChild(
      `
      const socket = process.argv[1];
      const ctx = makeDevice(socket, {
        reset(type) { console.log('reset', type); },
        connect() {
          process.on('exit', () => { ctx.close(); console.log('socket left:', require('fs').existsSync(socket)); });
          setImmediate(() => process.exit(0));
        },
      });
      // A client in the same process, attached through the poll loop.
      const fd = addon.os.connect(socket);
      const msg = Buffer.alloc(20);
      msg.writeUInt16LE(1, 0); msg.writeUInt16LE(1, 2); msg.writeUInt32LE(20, 4);
      addon.os.sendmsg(fd, [msg], []);
      `,
      socket,
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('reset 1\nsocket left: false\n');
  });

  test('a handler exception with no error handler is an uncaught exception', () => {
    const socket = tempSocket();
    const result = runChild(
      `
      const socket = process.argv[1];
      makeDevice(socket, { regionAccess() { throw new Error('handler failed'); } });
      process.on('uncaughtException', (err) => { console.log('uncaught:', err.message); process.exit(3); });
      const fd = addon.os.connect(socket);
      const version = Buffer.alloc(20);
      version.writeUInt16LE(1, 0); version.writeUInt16LE(1, 2); version.writeUInt32LE(20, 4);
      const read = Buffer.alloc(32);
      read.writeUInt16LE(2, 0); read.writeUInt16LE(9, 2); read.writeUInt32LE(32, 4); read.writeUInt32LE(4, 28);
      addon.os.sendmsg(fd, [version, read], []);
      `,
      socket,
    );
    expect(result.stdout).toBe('uncaught: handler failed\n');
    expect(result.status).toBe(3);
  });

  test('an exception thrown by an FdWatcher callback is an uncaught exception', () => {
    const result = runChild(
      `
      const fd = addon.os.eventfd(1, true);
      const watcher = new addon.os.FdWatcher(fd, () => { watcher.close(); throw new Error('from onEvent'); });
      process.on('uncaughtException', (err) => { console.log('uncaught:', err.message); });
      watcher.start(true, false);
      `,
      tempSocket(),
    );
    expect(result.stdout).toBe('uncaught: from onEvent\n');
    expect(result.status).toBe(0);
  });

  test('an unref()ed watcher does not keep the process alive', () => {
    const result = runChild(
      `
      const watcher = new addon.os.FdWatcher(addon.os.eventfd(0, true), () => {});
      watcher.start(true, false);
      watcher.unref();
      process.on('exit', () => console.log('exited'));
      `,
      tempSocket(),
    );
    expect(result.stdout).toBe('exited\n');
    expect(result.status).toBe(0);
  });

  test('a started device keeps the process alive; close() lets it end', () => {
    const socket = tempSocket();
    const result = runChild(
      `
      const ctx = makeDevice(process.argv[1], {});
      setTimeout(() => { ctx.close(); console.log('closed'); }, 200);
      `,
      socket,
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('closed\n');
  });
});
