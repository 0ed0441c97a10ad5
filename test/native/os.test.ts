/**
 * The addon's os helpers: memfd, mmap, eventfd, FdWatcher, and fd passing
 * (sendmsg/recvmsg with SCM_RIGHTS) against a real device.
 */
import * as fs from 'node:fs';

import { copyBytes, os } from '../../lib/native';
import { errorLike } from '../error-like';
import { REGION, startDevice } from './fixture';
import { CMD, WireClient, tick, until } from './wire';

describe('memory', () => {
  test('copyBytes copies part of one Uint8Array into another, and refuses ranges outside them', () => {
    // Errors made by the addon come from outside jest's realm: matched by name.
    const RANGE_ERROR = errorLike({ name: 'RangeError' });
    const TYPE_ERROR = errorLike({ name: 'TypeError' });
    const source = Buffer.from('0123456789');
    const target = new Uint8Array(6);
    copyBytes(target, 1, source, 3, 4);
    expect(Buffer.from(target).toString('latin1')).toBe('\u00003456\u0000');
    copyBytes(source, 0, source, 2, 8); // overlapping
    expect(source.toString()).toBe('2345678989');
    expect(() => copyBytes(target, 3, source, 0, 4)).toThrow(RANGE_ERROR);
    expect(() => copyBytes(target, 0, source, 8, 4)).toThrow(RANGE_ERROR);
    expect(() => copyBytes(target, -1, source, 0, 1)).toThrow(TYPE_ERROR);
    expect(() => copyBytes(target, 0, new Uint16Array(4) as unknown as Uint8Array, 0, 1)).toThrow(TYPE_ERROR);
    const fd = os.memfd('copy', 4096);
    try {
      const mapping = os.mmap(fd, 0, 4096, true);
      const view = new Uint8Array(mapping);
      os.munmap(mapping);
      expect(() => copyBytes(view, 0, source, 0, 1)).toThrow(RANGE_ERROR); // detached: length 0
    } finally {
      os.close(fd);
    }
  });

  test('memfd + mmap: two mappings share pages; munmap detaches', () => {
    const fd = os.memfd('test', 8192);
    try {
      expect(fs.fstatSync(fd).size).toBe(8192);
      const a = os.mmap(fd, 0, 8192, true);
      const b = os.mmap(fd, 4096, 4096, false);
      new Uint8Array(a)[4096 + 7] = 0x99;
      expect(new Uint8Array(b)[7]).toBe(0x99);
      os.munmap(a);
      expect(a.byteLength).toBe(0);
      expect(() => os.munmap(a)).toThrow(errorLike({ code: 'EINVAL', syscall: 'munmap' }));
      expect(() => os.munmap(new ArrayBuffer(8))).toThrow(errorLike({ code: 'EINVAL' }));
      os.munmap(b);
    } finally {
      os.close(fd);
    }
  });

  test('a sealed memfd cannot be shrunk or grown by whoever holds it; pageSize is the host page', () => {
    const fd = os.memfd('sealed', 8192, true);
    try {
      expect(fs.fstatSync(fd).size).toBe(8192);
      expect(() => fs.ftruncateSync(fd, 4096)).toThrow(errorLike({ code: 'EPERM' }));
      expect(() => fs.ftruncateSync(fd, 16384)).toThrow(errorLike({ code: 'EPERM' }));
      expect(fs.fstatSync(fd).size).toBe(8192);
      const unsealed = os.memfd('unsealed', 8192);
      fs.ftruncateSync(unsealed, 4096);
      os.close(unsealed);
    } finally {
      os.close(fd);
    }
    expect([4096, 16384, 65536]).toContain(os.pageSize);
  });

  test('mmap failures throw errno errors', () => {
    const fd = os.memfd('test', 4096);
    try {
      expect(() => os.mmap(fd, 1, 4096, true)).toThrow(errorLike({ code: 'EINVAL', syscall: 'mmap' }));
    } finally {
      os.close(fd);
    }
    expect(() => os.close(fd)).toThrow(errorLike({ code: 'EBADF', syscall: 'close' }));
  });
});

describe('eventfd and FdWatcher', () => {
  test('counter semantics, blocking and not', () => {
    const fd = os.eventfd(3, true);
    try {
      expect(os.eventfdRead(fd)).toBe(3n);
      expect(os.eventfdRead(fd)).toBeNull();
      os.eventfdWrite(fd, 2);
      os.eventfdWrite(fd, 5n);
      expect(os.eventfdRead(fd)).toBe(7n);
    } finally {
      os.close(fd);
    }
    const blocking = os.eventfd();
    try {
      os.eventfdWrite(blocking, 1);
      expect(os.eventfdRead(blocking)).toBe(1n);
    } finally {
      os.close(blocking);
    }
  });

  test('a watcher reports readability until stopped', async () => {
    const fd = os.eventfd(0, true);
    const events: Array<[boolean, boolean, number]> = [];
    const watcher = new os.FdWatcher(fd, (readable, writable, error) => {
      events.push([readable, writable, error]);
      os.eventfdRead(fd);
    });
    try {
      watcher.start(true, false);
      await tick(10);
      expect(events).toEqual([]);
      os.eventfdWrite(fd, 1);
      await until(() => events.length === 1);
      expect(events[0]).toEqual([true, false, 0]);
      watcher.stop();
      os.eventfdWrite(fd, 1);
      await tick(10);
      expect(events).toHaveLength(1);
      watcher.start(true, true);
      await until(() => events.length >= 2);
      expect(events[1]).toEqual([true, true, 0]);
    } finally {
      watcher.close();
      watcher.close();
      os.close(fd);
    }
    expect(() => watcher.start(true, false)).toThrow(errorLike({ code: 'EBADF' }));
  });
});

describe('fd passing', () => {
  test('recvmsg receives the fd of a mappable region', async () => {
    const memfd = os.memfd('bar2', 0x2000);
    const { ctx, socket } = startDevice({
      setup: (ctx) => ctx.setupRegion(2, 0x2000, REGION.RW | REGION.MEM, memfd, [[0x1000, 0x1000]]),
    });
    const client = await WireClient.connect(socket);
    try {
      const request = Buffer.alloc(32);
      request.writeUInt32LE(256, 0); // argsz: room for the capabilities
      request.writeUInt32LE(2, 8); // index
      const reply = await client.request(CMD.DEVICE_GET_REGION_INFO, request);
      expect(reply.errno).toBe(0);
      expect(reply.payload.readBigUInt64LE(16)).toBe(0x2000n);
      expect(reply.fds).toHaveLength(1);
      // The fd received is the device's memory.
      const page = new Uint8Array(os.mmap(reply.fds[0], 0x1000, 0x1000, true));
      const device = new Uint8Array(os.mmap(memfd, 0, 0x2000, true));
      page[5] = 0x66;
      expect(device[0x1005]).toBe(0x66);
      os.munmap(page.buffer);
      os.munmap(device.buffer);
      reply.fds.forEach((fd) => os.close(fd));
    } finally {
      client.close();
      ctx.close();
      os.close(memfd);
    }
  });

  test('sendmsg and recvmsg report errors and EAGAIN', async () => {
    const { ctx, socket } = startDevice();
    const fd = os.connect(socket);
    try {
      expect(os.recvmsg(fd, new Uint8Array(16), 0)).toBeNull();
      expect(() => os.recvmsg(fd, new Uint8Array(16), 17)).toThrow(errorLike({ code: 'EINVAL' }));
      expect(() => os.sendmsg(fd, [new Uint8Array(1)], [123456])).toThrow(
        errorLike({ code: 'EBADF', syscall: 'sendmsg' }),
      );
      // A VERSION the device rejects: it answers, then hangs up.
      const bad = Buffer.alloc(20);
      bad.writeUInt16LE(1, 2);
      bad.writeUInt32LE(20, 4);
      bad.writeUInt16LE(9, 16);
      expect(os.sendmsg(fd, [bad.subarray(0, 10), bad.subarray(10)], [])).toBe(20);
      const into = new Uint8Array(64);
      let got = 0;
      await until(() => {
        const r = os.recvmsg(fd, into, got);
        if (r !== null) got += r.bytes;
        return r !== null && r.bytes === 0;
      });
      expect(got).toBe(16);
      expect(Buffer.from(into).readUInt32LE(8)).toBe(0x21); // reply | error
    } finally {
      os.close(fd);
      ctx.close();
    }
  });

  test('connect to a path that is too long', () => {
    expect(() => os.connect('/tmp/' + 'x'.repeat(200))).toThrow(errorLike({ code: 'ENAMETOOLONG' }));
  });
});
