/**
 * The addon's DeviceContext served on a real socket and driven by hand-built
 * vfio-user messages.
 */
import * as fs from 'node:fs';

import { DeviceContext, os, type DeviceHandlers } from '../../lib/native';
import { errorLike } from '../error-like';
import { IRQ, REGION, Recorder, makeIoViews, startDevice, tempSocket, type Device } from './fixture';
import {
  CMD,
  IRQ_SET,
  WireClient,
  dmaMapPayload,
  dmaUnmapPayload,
  message,
  regionAccessPayload,
  setIrqsPayload,
  tick,
  until,
  versionPayload,
} from './wire';

const EIO = 5;
const ENOENT = 2;
const EINVAL = 22;
const ENODEV = 19;

const devices: Device[] = [];
const clients: WireClient[] = [];

function device(options?: Parameters<typeof startDevice>[0]): Device {
  const d = startDevice(options);
  devices.push(d);
  return d;
}

async function client(socket: string): Promise<WireClient> {
  const c = await WireClient.connect(socket);
  clients.push(c);
  return c;
}

afterEach(() => {
  clients.splice(0).forEach((c) => c.close());
  devices.splice(0).forEach((d) => d.ctx.close());
});

describe('serving', () => {
  test('a client attaches and its accesses reach regionAccess', async () => {
    const { ctx, handlers, socket } = device();
    expect(ctx.connected).toBe(false);
    const c = await client(socket);
    await until(() => ctx.connected);
    expect(handlers.named('connect')).toHaveLength(1);

    const info = await c.request(CMD.DEVICE_GET_INFO, Buffer.from([16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(info.errno).toBe(0);
    expect(info.payload.readUInt32LE(8)).toBe(9); // regions

    handlers.access = (_r, offset, data, isWrite) => {
      if (!isWrite) data.writeUInt32LE(0x12345678 + offset);
    };
    expect((await c.read(0, 0x10, 4)).readUInt32LE()).toBe(0x12345688);
    expect(await c.write(0, 0x20, Buffer.from([1, 2, 3, 4]))).toBe(0);
    expect(handlers.named('regionAccess')).toEqual([
      ['regionAccess', 0, 0x10, 4, false],
      ['regionAccess', 0, 0x20, 4, true],
    ]);
  });

  test('small accesses use the ioViews, with the data copied in and out', async () => {
    const { handlers, socket, ioViews } = device();
    const c = await client(socket);
    const seen: Buffer[] = [];
    let written: number[] = [];
    handlers.access = (_r, _o, data, isWrite) => {
      seen.push(data);
      if (isWrite) written = [...data];
      else data.set([9, 8, 7, 6, 5, 4, 3, 2].slice(0, data.length));
    };
    for (const size of [1, 2, 4, 8, 64]) {
      const bytes = await c.read(0, 0x100, size);
      expect(bytes.length).toBe(size);
      expect(bytes[0]).toBe(9);
      expect(await c.write(0, 0x100, Buffer.alloc(size, size))).toBe(0);
      expect(written).toEqual(Array(size).fill(size));
    }
    expect(seen.every((view) => ioViews.includes(view))).toBe(true);
    expect(seen.map((view) => view.length)).toEqual([1, 1, 2, 2, 4, 4, 8, 8, 64, 64]);
  });

  test('a read the handler does not fill returns zeros, not the previous data', async () => {
    const { handlers, socket } = device();
    const c = await client(socket);
    expect((await c.read(0, 0, 8)).every((b) => b === 0xab)).toBe(true);
    handlers.access = () => undefined;
    expect([...(await c.read(0, 0, 8))]).toEqual(Array(8).fill(0));
  });

  test('a large access gets a view that is detached after the call', async () => {
    const { handlers, socket } = device();
    const c = await client(socket);
    let kept: Buffer | undefined;
    handlers.access = (_r, _o, data, isWrite) => {
      kept = data;
      if (!isWrite) data.fill(0x5a);
      else expect(data.every((b) => b === 0x33)).toBe(true);
    };
    const bytes = await c.read(0, 0, 0x800);
    expect(bytes.length).toBe(0x800);
    expect(bytes.every((b) => b === 0x5a)).toBe(true);
    expect(kept!.length).toBe(0);
    expect(kept!.buffer.byteLength).toBe(0);
    expect(await c.write(0, 0x800, Buffer.alloc(0x800, 0x33))).toBe(0);
    expect(kept!.length).toBe(0);
  });

  test('process.nextTick and promise callbacks run between two accesses of one batch', async () => {
    const { handlers, socket } = device();
    const c = await client(socket);
    let ticks = 0;
    let microtasks = 0;
    const seenAtAccess: Array<[number, number]> = [];
    handlers.access = (_r, _o, data) => {
      seenAtAccess.push([ticks, microtasks]);
      process.nextTick(() => ticks++);
      void Promise.resolve().then(() => microtasks++);
      data.fill(0);
    };
    // Three requests in one write: the library serves them in one go.
    const ids = [c.newId(), c.newId(), c.newId()];
    const replies = ids.map((id) => c.expectReply(id));
    c.sendRaw(Buffer.concat(ids.map((id) => message(id, CMD.REGION_READ, regionAccessPayload(0, 0, 4)))));
    await Promise.all(replies);
    expect(seenAtAccess).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
  });

  test('config space: IDs, revision, class, and a zero-copy view', async () => {
    const { ctx, socket } = device({
      setup: (ctx) => {
        ctx.setRevision(0x42);
        ctx.setClass(0xff, 0x01, 0x02);
      },
    });
    const config = new DataView(ctx.configSpace());
    expect(config.byteLength).toBe(4096);
    expect(config.getUint16(0, true)).toBe(0x1b36);
    expect(config.getUint16(2, true)).toBe(0x0100);
    expect(config.getUint8(8)).toBe(0x42);
    expect(config.getUint8(0xb)).toBe(0xff);
    expect(config.getUint16(0x2c, true)).toBe(0x1af4);
    expect(ctx.configSpace()).toBe(ctx.configSpace());
    // The device writes, the client reads: no copy in between.
    config.setUint8(0x3c, 0x0b);
    const c = await client(socket);
    expect((await c.read(7, 0x3c, 1))[0]).toBe(0x0b);
  });

  test('a config region with ALWAYS_CB sends every config access to regionAccess', async () => {
    const ALWAYS_CB = 8;
    const { handlers, socket } = device({ setup: (ctx) => ctx.setupRegion(7, 4096, REGION.RW | ALWAYS_CB) });
    handlers.access = (_r, offset, data, isWrite) => {
      if (!isWrite) data.fill(offset & 0xff);
    };
    const c = await client(socket);
    expect([...(await c.read(7, 0x10, 2))]).toEqual([0x10, 0x10]);
    expect(await c.write(7, 0x44, Buffer.from([1, 2, 3]))).toBe(0);
    expect(handlers.named('regionAccess')).toEqual([
      ['regionAccess', 7, 0x10, 2, false],
      ['regionAccess', 7, 0x44, 3, true],
    ]);
  });

  test('setLogLevel chooses which library messages reach log()', async () => {
    const { ctx, handlers, socket } = device();
    ctx.setLogLevel(3); // LOG_ERR: no attach/detach notices
    const c = await client(socket);
    c.close();
    await until(() => !ctx.connected);
    expect(handlers.named('log')).toEqual([]);
    expect(() => ctx.setLogLevel(8)).toThrow(errorLike({ name: 'TypeError' }));
  });

  test('addCapability places capabilities and returns their offsets', () => {
    const { ctx } = device({
      setup: (ctx) => {
        const pm = new Uint8Array(8);
        pm[0] = 0x01; // PCI_CAP_ID_PM
        expect(ctx.addCapability(0, 0, pm)).toBe(0x40);
        const vendor = new Uint8Array([0x09, 0, 8, 1, 2, 3, 4, 5]);
        expect(ctx.addCapability(0, 0, vendor)).toBe(0x48);
        // Too short for its type: the library sees zeros past the end.
        expect(ctx.addCapability(0, 0, new Uint8Array([0x01]))).toBe(0x50);
      },
    });
    expect(new Uint8Array(ctx.configSpace())[0x34]).toBe(0x40);
  });
});

describe('errors', () => {
  test('a throwing handler fails the request with its errno; error() gets it; serving goes on', async () => {
    const { handlers, socket } = device();
    const c = await client(socket);
    const thrown = Object.assign(new Error('no such register'), { errno: ENODEV });
    handlers.access = () => {
      throw thrown;
    };
    const reply = await c.request(CMD.REGION_READ, regionAccessPayload(0, 0, 4));
    expect(reply.errno).toBe(ENODEV);
    await until(() => handlers.errors.length === 1);
    expect(handlers.errors[0]).toBe(thrown);

    handlers.access = () => {
      throw new Error('plain');
    };
    expect(await c.write(0, 0, Buffer.alloc(4))).toBe(EIO);
    handlers.access = () => {
      throw Object.assign(new Error('negative'), { errno: -2 });
    };
    expect(await c.write(0, 0, Buffer.alloc(4))).toBe(EIO);
    handlers.access = () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw 'a string';
    };
    expect(await c.write(0, 0, Buffer.alloc(100))).toBe(EIO);
    await until(() => handlers.errors.length === 4);
    // Errors made by the addon belong to Node's realm, not jest's.
    expect(handlers.errors[3].name).toBe('Error');
    expect(handlers.errors[3].message).toContain('a string');

    handlers.access = (_r, _o, data) => data.fill(7);
    expect([...(await c.read(0, 0, 2))]).toEqual([7, 7]);
  });

  test('errors from the addon carry code, errno and syscall', () => {
    const socket = tempSocket();
    fs.writeFileSync(socket, 'not a socket');
    let caught: unknown;
    try {
      new DeviceContext(socket, new Recorder(), makeIoViews());
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'EEXIST', errno: 17, syscall: 'vfu_create_ctx' });
    expect((caught as Error).message).toBe('vfu_create_ctx: File exists (EEXIST)');
    expect(() => os.connect(tempSocket('absent.sock'))).toThrow(
      errorLike({ code: 'ENOENT', errno: ENOENT, syscall: 'connect' }),
    );
  });

  test('bad arguments are TypeErrors', () => {
    const TypeError = errorLike({ name: 'TypeError' });
    expect(() => new DeviceContext(1 as unknown as string, {}, makeIoViews())).toThrow(TypeError);
    expect(() => new DeviceContext(tempSocket(), {}, [])).toThrow(TypeError);
    expect(() => new DeviceContext(tempSocket(), { reset: 1 } as unknown as DeviceHandlers, makeIoViews())).toThrow(TypeError);
    const views = makeIoViews();
    views[3] = Buffer.alloc(3);
    expect(() => new DeviceContext(tempSocket(), {}, views)).toThrow(TypeError);
    const { ctx } = device();
    expect(() => ctx.setupRegion(9, 0x1000, REGION.RW)).toThrow(TypeError);
    expect(() => ctx.setIds(0x10000, 0, 0, 0)).toThrow(TypeError);
    expect(() => ctx.irqTrigger(-1, IRQ.INTX)).toThrow(TypeError);
    expect(() => ctx.irqTrigger(0, 'msi' as unknown as number)).toThrow(TypeError);
    expect(() => ctx.dmaTransfer(0x1000, [1, 2] as unknown as Uint8Array, false, () => undefined)).toThrow(TypeError);
    expect(() => ctx.dmaTransfer(0x1000, new Uint16Array(2) as unknown as Uint8Array, false, () => undefined)).toThrow(TypeError);
    expect(() => ctx.dmaTransfer(0x1000, new Uint8Array(2), false, 'done' as unknown as () => void)).toThrow(TypeError);
    expect(() => ctx.dmaTransfer(-1, new Uint8Array(2), false, () => undefined)).toThrow(TypeError);
  });

  test('library failures throw errno errors', () => {
    const { ctx } = device();
    expect(() => ctx.setupRegion(1, 3, REGION.RW)).toThrow(errorLike({ code: 'EINVAL', syscall: 'vfu_setup_region' }));
    expect(() => ctx.pciInit(3)).toThrow(errorLike({ code: 'EEXIST', syscall: 'vfu_pci_init' }));
    expect(() => ctx.irqTrigger(0, IRQ.INTX)).toThrow(errorLike({ syscall: 'vfu_irq_trigger' }));
    // No client, nothing mapped: refused at once, and the callback is never called.
    const done = jest.fn();
    expect(() => ctx.dmaTransfer(0x1000, new Uint8Array(4), false, done)).toThrow(errorLike({ syscall: 'vfu_ext_dma_transfer' }));
    expect(done).not.toHaveBeenCalled();
  });

  test('a client failing negotiation is reported and the device keeps listening', async () => {
    const { ctx, handlers, socket } = device();
    const bad = WireClient.open(socket);
    clients.push(bad);
    const reply = await bad.request(CMD.VERSION, versionPayload(7));
    expect(reply.errno).toBe(EINVAL);
    await bad.closed;
    await until(() => handlers.errors.length === 1);
    expect(handlers.errors[0]).toMatchObject({ code: 'EINVAL', syscall: 'vfu_attach_ctx' });
    expect(ctx.connected).toBe(false);
    const good = await client(socket);
    expect((await good.read(0, 0, 1))[0]).toBe(0xab);
  });

  test('VERSION arriving in pieces: the poll moves to the connection and waits', async () => {
    const { ctx, socket } = device();
    const c = WireClient.open(socket);
    clients.push(c);
    const id = c.newId();
    const reply = c.expectReply(id);
    const bytes = message(id, CMD.VERSION, versionPayload());
    c.sendRaw(bytes.subarray(0, 5));
    await tick(20);
    expect(ctx.connected).toBe(false);
    c.sendRaw(bytes.subarray(5));
    expect((await reply).errno).toBe(0);
    expect(ctx.connected).toBe(true);
  });
});

describe('interrupts', () => {
  // irqVectorState()'s bits.
  const MASKED = 1;
  const PENDING = 2;

  test('SET_IRQS with an eventfd, irqTrigger signals it; masks reach irqState', async () => {
    const { ctx, handlers, socket } = device({ setup: (ctx) => ctx.setupIrqs(IRQ.INTX, 1) });
    const c = await client(socket);
    expect(() => ctx.irqTrigger(0, IRQ.INTX)).toThrow(errorLike({ code: 'ENOENT' }));
    expect(() => ctx.irqTrigger(5, IRQ.INTX)).toThrow(errorLike({ code: 'EINVAL' }));
    // Without MSI or MSI-X capabilities, INTx is the function's only mode.
    expect(ctx.interruptMode()).toBe(IRQ.INTX);
    expect(ctx.irqTrigger(0, IRQ.MSI)).toBe(false);

    const efd = os.eventfd(0, true);
    try {
      const reply = await c.request(
        CMD.DEVICE_SET_IRQS,
        setIrqsPayload(IRQ_SET.DATA_EVENTFD | IRQ_SET.ACTION_TRIGGER, IRQ.INTX, 0, 1),
        [efd],
      );
      expect(reply.errno).toBe(0);
      expect(os.eventfdRead(efd)).toBeNull();
      expect(ctx.irqTrigger(0, IRQ.INTX)).toBe(true);
      expect(os.eventfdRead(efd)).toBe(1n);

      const mask = await c.request(CMD.DEVICE_SET_IRQS, setIrqsPayload(IRQ_SET.DATA_NONE | IRQ_SET.ACTION_MASK, IRQ.INTX, 0, 1));
      expect(mask.errno).toBe(0);
      expect(handlers.named('irqState')).toEqual([['irqState', IRQ.INTX, 0, 1, true]]);
      expect(ctx.irqVectorState(IRQ.INTX, 0)).toBe(MASKED);
    } finally {
      os.close(efd);
    }
  });

  test('MSI-X vector masks and pending bits of the emulated table', async () => {
    let msixOffset = 0;
    const { ctx, socket } = device({
      setup: (ctx) => {
        ctx.setupRegion(1, 0x1000, REGION.RW | REGION.MEM);
        const msix = new Uint8Array(12);
        const view = new DataView(msix.buffer);
        msix[0] = 0x11; // PCI_CAP_ID_MSIX
        view.setUint16(2, 4 - 1, true); // 4 vectors
        view.setUint32(4, 0x000 | 1, true); // table at BAR1 + 0
        view.setUint32(8, 0x800 | 1, true); // PBA at BAR1 + 0x800
        msixOffset = ctx.addCapability(0, 0, msix);
        ctx.setupIrqs(IRQ.MSIX, 4);
      },
    });
    const c = await client(socket);
    const efds = [os.eventfd(0, true), os.eventfd(0, true), os.eventfd(0, true), os.eventfd(0, true)];
    try {
      const irqs = await c.request(
        CMD.DEVICE_SET_IRQS,
        setIrqsPayload(IRQ_SET.DATA_EVENTFD | IRQ_SET.ACTION_TRIGGER, IRQ.MSIX, 0, 4),
        efds,
      );
      expect(irqs.errno).toBe(0);
      // MSI-X Enable, through config space.
      // Until MSI-X is enabled, the library signals INTx: an MSI-X trigger does nothing.
      expect(ctx.interruptMode()).toBe(IRQ.INTX);
      expect(ctx.irqTrigger(1, IRQ.MSIX)).toBe(false);
      expect(os.eventfdRead(efds[1])).toBeNull();
      // MSI-X Enable, through config space.
      expect(await c.write(7, msixOffset + 3, Buffer.from([0x80]))).toBe(0);
      expect(ctx.interruptMode()).toBe(IRQ.MSIX);
      expect(ctx.irqVectorState(IRQ.MSIX, 2)).toBe(0);
      // Mask vector 2 in the table (Vector Control of entry 2).
      expect(await c.write(1, 2 * 16 + 12, Buffer.from([1, 0, 0, 0]))).toBe(0);
      expect(ctx.irqVectorState(IRQ.MSIX, 2)).toBe(MASKED);
      expect(ctx.irqTrigger(2, IRQ.MSIX)).toBe(true);
      expect(os.eventfdRead(efds[2])).toBeNull();
      expect(ctx.irqVectorState(IRQ.MSIX, 2)).toBe(MASKED | PENDING);
      expect(await c.write(1, 2 * 16 + 12, Buffer.from([0, 0, 0, 0]))).toBe(0);
      expect(ctx.irqVectorState(IRQ.MSIX, 2)).toBe(0);
      expect(os.eventfdRead(efds[2])).toBe(1n);
      // The function mask masks every vector.
      expect(await c.write(7, msixOffset + 3, Buffer.from([0xc0]))).toBe(0);
      expect(ctx.irqVectorState(IRQ.MSIX, 0)).toBe(MASKED);
      expect(() => ctx.irqVectorState(IRQ.MSIX, 4)).toThrow(errorLike({ code: 'EINVAL' }));
      expect(() => ctx.irqVectorState(7, 0)).toThrow(errorLike({ code: 'EINVAL' }));
    } finally {
      efds.forEach((fd) => os.close(fd));
    }
  });
});

describe('DMA', () => {
  test('DMA_MAP with a memfd gives dmaRegister a working ArrayBuffer, detached at unmap', async () => {
    const { handlers, socket } = device({ setup: (ctx) => ctx.setupDma(16) });
    const c = await client(socket);
    const size = 0x4000;
    const memfd = os.memfd('guest', size);
    const guest = new Uint8Array(os.mmap(memfd, 0, size, true));
    try {
      const reply = await c.request(CMD.DMA_MAP, dmaMapPayload(3, 0, 0x100000, size), [memfd]);
      expect(reply.errno).toBe(0);
      const [call] = handlers.named('dmaRegister');
      expect(call.slice(0, 4)).toEqual(['dmaRegister', 0x100000, size, 3]);
      const memory = new Uint8Array(call[4] as ArrayBuffer);
      expect(memory.length).toBe(size);
      // The same pages on both sides.
      guest[0x123] = 0x77;
      expect(memory[0x123]).toBe(0x77);
      memory[0x3fff] = 0x55;
      expect(guest[0x3fff]).toBe(0x55);

      const unmap = await c.request(CMD.DMA_UNMAP, dmaUnmapPayload(0x100000, size));
      expect(unmap.errno).toBe(0);
      expect(handlers.named('dmaUnregister')).toEqual([['dmaUnregister', 0x100000, size]]);
      expect((call[4] as ArrayBuffer).byteLength).toBe(0);
    } finally {
      os.munmap(guest.buffer);
      os.close(memfd);
    }
  });

  test('a quiesce handler runs before DMA_MAP, and its exception fails it', async () => {
    const handlers = new Recorder();
    let quiesceError: Error | undefined = undefined; // none at first
    const withQuiesce = Object.assign(handlers, {
      quiesce(): void {
        handlers.calls.push(['quiesce']);
        if (quiesceError) throw quiesceError;
      },
    });
    const socket = tempSocket();
    const ctx = new DeviceContext(socket, withQuiesce, makeIoViews());
    devices.push({ ctx, handlers, ioViews: [], socket });
    ctx.pciInit(3);
    ctx.setupDma(4);
    ctx.realize();
    ctx.start();
    const c = await client(socket);
    const payload = dmaMapPayload(3, 0, 0x200000, 0x1000);
    expect((await c.request(CMD.DMA_MAP, payload)).errno).toBe(0);
    expect(handlers.named('quiesce')).toHaveLength(1);
    quiesceError = Object.assign(new Error('busy'), { errno: 16 }); // EBUSY
    expect((await c.request(CMD.DMA_MAP, dmaMapPayload(3, 0, 0x300000, 0x1000))).errno).toBe(EIO);
  });
});

describe('connections', () => {
  test('reset, disconnect and reconnect: the poll follows the fd', async () => {
    const { ctx, handlers, socket } = device();
    for (let round = 0; round < 3; round++) {
      const c = await client(socket);
      expect((await c.request(CMD.DEVICE_RESET, Buffer.alloc(0))).errno).toBe(0);
      expect((await c.read(0, 4, 4)).length).toBe(4);
      c.close();
      await until(() => !ctx.connected);
    }
    expect(handlers.named('connect')).toHaveLength(3);
    expect(handlers.named('disconnect')).toHaveLength(3);
    expect(handlers.named('reset')).toEqual([
      ['reset', 0],
      ['reset', 1],
      ['reset', 0],
      ['reset', 1],
      ['reset', 0],
      ['reset', 1],
    ]);
  });

  test('a handler may watch a new fd as soon as the client is gone', async () => {
    const { ctx, handlers, socket } = device();
    const sockets = (): number[] =>
      fs
        .readdirSync('/proc/self/fd')
        .map(Number)
        .filter((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
          } catch {
            return false;
          }
        });
    const before = sockets();
    const c = await client(socket);
    const serverFd = sockets().filter((fd) => !before.includes(fd) && fd !== c.fd);
    expect(serverFd).toHaveLength(1);
    // When detach() runs the library has closed the connection: opening fds
    // until one gets its number, and watching that one, must work.
    const opened: number[] = [];
    let watcher: ReturnType<typeof newWatcher> | undefined;
    function newWatcher(fd: number) {
      const w = new os.FdWatcher(fd, () => undefined);
      w.start(true, false);
      return w;
    }
    handlers.onDisconnect = () => {
      while (opened.length < 256 && !opened.includes(serverFd[0])) {
        opened.push(os.eventfd(0, true));
      }
      watcher = newWatcher(serverFd[0]);
    };
    try {
      c.close();
      await until(() => !ctx.connected);
      expect(opened).toContain(serverFd[0]);
      expect(watcher).toBeDefined();
      expect(handlers.errors).toEqual([]);
      const again = await client(socket);
      expect((await again.read(0, 0, 1))[0]).toBe(0xab);
    } finally {
      watcher?.close();
      opened.forEach((fd) => os.close(fd));
    }
  });

  test('close while a client is connected', async () => {
    const { ctx, handlers, socket } = device({ setup: (ctx) => ctx.setupDma(4) });
    const c = await client(socket);
    const memfd = os.memfd('guest', 0x1000);
    try {
      expect((await c.request(CMD.DMA_MAP, dmaMapPayload(3, 0, 0, 0x1000), [memfd])).errno).toBe(0);
    } finally {
      os.close(memfd);
    }
    const config = ctx.configSpace();
    const memory = handlers.named('dmaRegister')[0][4] as ArrayBuffer;
    ctx.close();
    expect(fs.existsSync(socket)).toBe(false);
    expect(ctx.connected).toBe(false);
    expect(config.byteLength).toBe(0);
    expect(memory.byteLength).toBe(0);
    expect(handlers.named('reset')).toEqual([['reset', 1]]);
    expect(handlers.named('disconnect')).toHaveLength(1);
    expect(handlers.named('dmaUnregister')).toHaveLength(1);
    await c.closed;
    ctx.close(); // idempotent
    expect(() => ctx.start()).toThrow(errorLike({ code: 'EBADF' }));
  });

  test('close from inside a handler takes effect once the library returns', async () => {
    const { ctx, handlers, socket } = device();
    const c = await client(socket);
    handlers.access = (_r, _o, data) => {
      ctx.close();
      data.fill(1);
      expect(fs.existsSync(socket)).toBe(true);
    };
    expect([...(await c.read(0, 0, 2))]).toEqual([1, 1]);
    await c.closed;
    expect(fs.existsSync(socket)).toBe(false);
    expect(handlers.named('reset')).toEqual([['reset', 1]]);
  });

  test('two devices in one process', async () => {
    const a = device();
    const b = device();
    a.handlers.access = (_r, _o, data) => data.fill(0xaa);
    b.handlers.access = (_r, _o, data) => data.fill(0xbb);
    const ca = await client(a.socket);
    const cb = await client(b.socket);
    const [ra, rb] = await Promise.all([ca.read(0, 0, 4), cb.read(0, 0, 4)]);
    expect([...ra]).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
    expect([...rb]).toEqual([0xbb, 0xbb, 0xbb, 0xbb]);
    ca.close();
    await until(() => !a.ctx.connected);
    expect((await cb.read(0, 0, 1))[0]).toBe(0xbb);
    expect(b.ctx.connected).toBe(true);
  });

  test('log() gets the library messages', async () => {
    const { handlers, socket } = device();
    const c = await client(socket);
    c.close();
    await until(() => handlers.named('log').some((call) => /disconnected/.test(call[2] as string)));
    expect(handlers.named('log').some((call) => /attached/.test(call[2] as string))).toBe(true);
  });
});
