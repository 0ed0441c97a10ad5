// Serves a device through the addon named by $VFIO_USER_ADDON (built against
// an installed libvfio-user by scripts/test-system-lib.sh) and talks to it
// with hand-built messages: negotiation, region read and write, an interrupt
// through an eventfd, a DMA mapping backed by a memfd, and close(). Then,
// through the package compiled into $VFIO_USER_LIB on that addon, a device
// reads and writes memory a client in a child process mapped without an fd:
// the addon's blocking fallback (vfu_sgl_read / vfu_sgl_write by messages).
'use strict';
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const fs = require('node:fs');
const nodeOs = require('node:os');
const path = require('node:path');

const addon = require(process.env.VFIO_USER_ADDON);
const { os } = addon;

function header(id, cmd, payloadLength) {
  const h = Buffer.alloc(16);
  h.writeUInt16LE(id, 0);
  h.writeUInt16LE(cmd, 2);
  h.writeUInt32LE(16 + payloadLength, 4);
  return h;
}

// One request, one reply, with the fd watched by the addon's FdWatcher.
function request(fd, id, cmd, payload, fds = []) {
  return new Promise((resolve, reject) => {
    const into = Buffer.alloc(1 << 16);
    let got = 0;
    const watcher = new os.FdWatcher(fd, () => {
      const r = os.recvmsg(fd, into, got);
      if (r === null) return;
      if (r.bytes === 0) {
        watcher.close();
        reject(new Error('connection closed'));
        return;
      }
      got += r.bytes;
      r.fds.forEach((f) => os.close(f));
      if (got >= 16 && got >= into.readUInt32LE(4)) {
        watcher.close();
        const flags = into.readUInt32LE(8);
        assert.equal(into.readUInt16LE(0), id);
        resolve({ errno: flags & 0x20 ? into.readUInt32LE(12) : 0, payload: into.subarray(16, into.readUInt32LE(4)) });
      }
    });
    watcher.start(true, false);
    os.sendmsg(fd, [header(id, cmd, payload.length), payload], fds);
  });
}

async function main() {
  const socket = path.join(fs.mkdtempSync(path.join(nodeOs.tmpdir(), 'vfu-syslib-')), 'dev.sock');
  const calls = [];
  const errors = [];
  const memory = new ArrayBuffer(64);
  const views = Array.from({ length: 65 }, (_, n) => Buffer.from(memory, 0, n));
  const ctx = new addon.DeviceContext(
    socket,
    {
      regionAccess(region, offset, data, isWrite) {
        calls.push(['access', region, offset, data.length, isWrite]);
        if (!isWrite) data.writeUInt32LE(0xcafe0000 + offset);
      },
      reset(type) { calls.push(['reset', type]); },
      dmaRegister(iova, length, prot, mem) { calls.push(['dma', iova, length, prot, mem && mem.byteLength]); },
      connect() { calls.push(['connect']); },
      error(err) { errors.push(err); },
    },
    views,
  );
  ctx.pciInit(3);
  ctx.setIds(0x1b36, 0x0100, 0, 0);
  ctx.setupRegion(0, 0x1000, 7);
  ctx.setupIrqs(0, 1);
  ctx.setupDma(8);
  // A doorbell's eventfd: vfu_create_ioeventfd is upstream API too.
  const doorbell = os.eventfd(0, true);
  ctx.createIoeventfd(0, doorbell, 0x40, 4, 1, 7n);
  ctx.realize();
  ctx.start();
  assert.equal(new DataView(ctx.configSpace()).getUint16(0, true), 0x1b36);
  assert.equal(addon.libraryExtensions, false);
  assert.throws(() => ctx.irqVectorState(2, 0), { code: 'ENOTSUP' });
  assert.throws(() => ctx.interruptMode(), { code: 'ENOTSUP' });

  const fd = os.connect(socket);
  const version = Buffer.concat([Buffer.from([0, 0, 2, 0]), Buffer.from('{"capabilities":{"max_msg_fds":8}}\0')]);
  assert.equal((await request(fd, 1, 1, version)).errno, 0);
  assert.equal(ctx.connected, true);

  const read = Buffer.alloc(16);
  read.writeUInt32LE(0x10, 0);
  read.writeUInt32LE(4, 12);
  const reply = await request(fd, 2, 9, read);
  assert.equal(reply.errno, 0);
  assert.equal(reply.payload.readUInt32LE(16), 0xcafe0010);

  const ioFds = Buffer.alloc(16);
  ioFds.writeUInt32LE(16 + 48, 0);
  const listed = await request(fd, 5, 6, ioFds);
  assert.equal(listed.errno, 0);
  assert.equal(listed.payload.readUInt32LE(12), 1); // count
  assert.equal(listed.payload.readBigUInt64LE(16), 0x40n); // offset
  assert.equal(listed.payload.readBigUInt64LE(16 + 40), 7n); // datamatch

  const efd = os.eventfd(0, true);
  const irqs = Buffer.alloc(20);
  irqs.writeUInt32LE(20, 0);
  irqs.writeUInt32LE(0x4 | 0x20, 4); // eventfd, trigger
  irqs.writeUInt32LE(1, 16);
  assert.equal((await request(fd, 3, 8, irqs, [efd])).errno, 0);
  assert.equal(ctx.irqTrigger(0, 0), true);
  assert.equal(os.eventfdRead(efd), 1n);
  os.close(efd);

  const memfd = os.memfd('guest', 0x2000);
  const map = Buffer.alloc(32);
  map.writeUInt32LE(32, 0);
  map.writeUInt32LE(3, 4);
  map.writeBigUInt64LE(0x40000n, 16);
  map.writeBigUInt64LE(0x2000n, 24);
  assert.equal((await request(fd, 4, 2, map, [memfd])).errno, 0);
  os.close(memfd);

  ctx.close();
  os.close(doorbell);
  assert.equal(fs.existsSync(socket), false);
  os.close(fd);
  assert.deepEqual(calls, [
    ['connect'],
    ['access', 0, 0x10, 4, false],
    ['dma', 0x40000, 0x2000, 3, 0x2000],
    ['reset', 1],
  ]);
  assert.deepEqual(errors, []);
  console.log('system-lib: a device served through the system-library addon works');
}

// Resolves with the child's report, or rejects when it dies without one.
function runClient(socket) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'system-lib-dma-client.js'), [], {
      env: { ...process.env, SOCKET: socket },
    });
    let report;
    child.on('message', (message) => { report = message; });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (report === undefined) {
        reject(new Error(`the DMA client exited (code ${code}, signal ${signal}) without a report`));
      } else if (!report.ok) {
        reject(new Error(`the DMA client failed:\n${report.error}`));
      } else {
        resolve(report);
      }
    });
  });
}

async function dmaByMessages() {
  const lib = require(process.env.VFIO_USER_LIB);
  // The package must run on the system-library addon, not a vendored build.
  assert.equal(require(path.join(process.env.VFIO_USER_LIB, 'native.js')).native, addon);
  const { JOB, pattern, sameBytes, makeCopyEngine } = require('./system-lib-dma-device');
  const device = new (makeCopyEngine(lib))();
  const socket = path.join(fs.mkdtempSync(path.join(nodeOs.tmpdir(), 'vfu-syslib-')), 'dma.sock');
  const server = new lib.VfioUserServer(device, { socket });
  const errors = [];
  server.on('error', (err) => errors.push(err));
  const maps = [];
  device.dma.on('map', (m) => maps.push(m));

  await runClient(socket);
  // What only our library answers is refused in one typed error naming it.
  assert.throws(
    () => device.isMasked('msi', 0),
    (err) => err instanceof lib.LibraryFeatureError && err.errno === nodeOs.constants.errno.ENOTSUP &&
      err.feature === 'interrupt mask and pending state',
  );
  server.close();

  assert.deepEqual(errors, [], 'the server reported errors');
  assert.equal(maps.length, 3, `the device saw ${maps.length} mappings, not 3`);
  assert.ok(maps.every((m) => !m.mapped), 'the client mapped memory with an fd');
  const [copy, readOnly, refused, again] = device.jobs;
  assert.equal(device.jobs.length, 4, `the device ran ${device.jobs.length} jobs, not 4`);
  sameBytes(copy.seen, pattern(0x2800, 3), 'the device read the wrong data');
  assert.equal(copy.error, undefined);
  assert.ok(readOnly.error instanceof lib.DmaError, `not a DmaError: ${readOnly.error}`);
  assert.equal(readOnly.error.reason, 'read-only');
  sameBytes(readOnly.seen, pattern(0x100, 3), 'the device read the wrong data before the refused write');
  // The library sent the DMA_READ and the client refused it.
  assert.ok(refused.error instanceof lib.DmaError, `not a DmaError: ${refused.error}`);
  assert.equal(refused.error.reason, 'unmapped');
  assert.match(refused.error.message, /DMA_READ/);
  assert.equal(refused.seen, undefined);
  sameBytes(again.seen, pattern(0x1800, 5), 'the device read the wrong data after the refusals');
  assert.equal(again.error, undefined);
  assert.equal(device.regs.get('status'), JOB.DONE);
  console.log('system-lib: a device read and wrote client memory by messages through the blocking fallback');
}

// A hung client fails the check instead of stalling CI (a transfer blocked
// in the library stops this timer too: the script's timeout covers that).
const deadline = setTimeout(() => {
  console.error('system-lib: FAIL: the check did not finish within 30 s');
  process.exit(1);
}, 30000);

main()
  .then(dmaByMessages)
  .then(() => clearTimeout(deadline))
  .catch((err) => {
    console.error('system-lib: FAIL:', err);
    process.exit(1);
  });
