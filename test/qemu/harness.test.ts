/**
 * The harness itself, without QEMU: finding QEMU and explaining its absence,
 * the qtest line protocol against a scripted peer (replies in order, IRQ
 * lines between them, failures), and the cleanup of processes and
 * directories.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, Socket, connect } from 'node:net';
import { join } from 'node:path';

import {
  cleanupAll,
  leftovers,
  lookupQemu,
  makeTempDir,
  onCleanup,
  PciHost,
  QtestConnection,
  QtestError,
  spawnTracked,
} from './harness';

afterEach(cleanupAll);

/** A qtest peer that answers each command line with `respond(line)`. */
async function scriptedPeer(respond: (line: string, peer: Socket) => void): Promise<QtestConnection> {
  const dir = makeTempDir();
  const path = join(dir, 'peer.sock');
  const server = createServer((peer) => {
    let buffered = '';
    peer.setEncoding('latin1');
    peer.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        respond(line, peer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const socket = await new Promise<Socket>((resolve) => {
    const s = connect(path, () => resolve(s));
  });
  const conn = new QtestConnection(socket);
  onCleanup(() => {
    conn.close();
    server.close();
  });
  return conn;
}

describe('finding QEMU', () => {
  test('an explicit $QEMU that does not exist is reported, not replaced by a guess', () => {
    const found = lookupQemu({ QEMU: '/nonexistent/qemu-system-x86_64', PATH: process.env.PATH });
    expect(found.ok).toBe(false);
    expect(!found.ok && found.reason).toMatch(/\/nonexistent\/qemu-system-x86_64 \(\$QEMU\) is not an executable/);
  });

  test('a QEMU without vfio-user-pci is rejected with the reason', () => {
    const dir = makeTempDir();
    const fake = join(dir, 'qemu-system-x86_64');
    writeFileSync(fake, '#!/bin/sh\necho "QEMU emulator version 7.2.0"\n', { mode: 0o755 });
    const found = lookupQemu({ QEMU: fake });
    expect(!found.ok && found.reason).toMatch(/QEMU emulator version 7\.2\.0.*no vfio-user-pci/);
  });

  test('with nothing anywhere, the reason says how to get QEMU', () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'bin'));
    const found = lookupQemu({ PATH: join(dir, 'bin') }, dir);
    expect(!found.ok && found.reason).toMatch(/scripts\/get-qemu\.sh/);
  });

  test('a fake QEMU that lists vfio-user-pci is accepted, with its version', () => {
    const dir = makeTempDir();
    const fake = join(dir, 'qemu-system-x86_64');
    writeFileSync(
      fake,
      '#!/bin/sh\ncase "$*" in *--version*) echo "QEMU emulator version 99.0.0";; *) echo \'name "vfio-user-pci", bus PCI\';; esac\n',
      { mode: 0o755 },
    );
    const found = lookupQemu({ PATH: `${dir}:/usr/bin:/bin` }, makeTempDir());
    expect(found).toEqual({ ok: true, qemu: { path: fake, version: 'QEMU emulator version 99.0.0', source: 'PATH' } });
  });
});

describe('qtest protocol', () => {
  test('replies are matched to pipelined commands in order, IRQ lines in between are events', async () => {
    const q = await scriptedPeer((line, peer) => {
      if (line.startsWith('readl')) {
        peer.write('IRQ raise 21\nOK 0x00000000deadbeef\nIRQ lower 21\n');
      } else if (line.startsWith('inb')) {
        peer.write('OK 0x7f\n');
      } else if (line.startsWith('read ')) {
        peer.write('OK 0x0102ff\n');
      } else {
        peer.write('OK\n');
      }
    });
    const mark = q.irqMark();
    const [a, b, c, d] = await Promise.all([q.readl(0x1000), q.inb(0x60), q.writel(0x10, 1), q.read(0x2000, 3)]);
    expect(a).toBe(0xdeadbeef);
    expect(b).toBe(0x7f);
    expect(c).toBeUndefined();
    expect(d).toEqual(Buffer.from([1, 2, 0xff]));
    expect((await q.waitIrq(true, 21, 1000, mark)).line).toBe(21);
    await q.waitIrq(false, 21, 1000, mark);
    expect(q.irqLevel(21)).toBe(false);
    expect(q.irqEvents.map((e) => e.level)).toEqual([true, false]);
  });

  test('64-bit values keep every bit', async () => {
    const sent: string[] = [];
    const q = await scriptedPeer((line, peer) => {
      sent.push(line);
      peer.write(line.startsWith('readq') ? 'OK 0xfedcba9876543210\n' : 'OK\n');
    });
    expect(await q.readq(0x10)).toBe(0xfedcba9876543210n);
    await q.writeq(0x10, -1n);
    expect(sent).toEqual(['readq 0x10', 'writeq 0x10 0xffffffffffffffff']);
  });

  test('a FAIL reply rejects that command only; the next one still works', async () => {
    const q = await scriptedPeer((line, peer) => {
      peer.write(line.startsWith('bogus') ? 'FAIL Unknown command \'bogus\'\n' : 'OK little\n');
    });
    await expect(q.command('bogus')).rejects.toBeInstanceOf(QtestError);
    expect(await q.command('endianness')).toBe('little');
  });

  test('a lost connection rejects every waiting command', async () => {
    const q = await scriptedPeer((_line, peer) => peer.destroy());
    await expect(q.readl(0)).rejects.toThrow(/closed/);
    await expect(q.readl(0)).rejects.toThrow(/closed/);
  });

  test('waiting for an interrupt that never comes times out with a clear message', async () => {
    const q = await scriptedPeer((_line, peer) => peer.write('OK\n'));
    await expect(q.waitIrq(true, 5, 50)).rejects.toThrow(/no "IRQ raise 5" within 50 ms/);
  });

  test('config mechanism #1 and ECAM addresses are formed as PCI and q35 define them', async () => {
    const sent: string[] = [];
    const q = await scriptedPeer((line, peer) => {
      sent.push(line);
      peer.write(line.startsWith('in') || line.startsWith('read') ? 'OK 0x0\n' : 'OK\n');
    });
    const pci = new PciHost(q);
    const fn = { bus: 0, slot: 3, fn: 1 };
    await pci.ioRead(fn, 0x3e, 2);
    await pci.enableEcam();
    await pci.ecamWrite(fn, 0x103, 1, 0xab);
    expect(sent).toEqual([
      'outl 0xcf8 0x8000193c',
      'inw 0xcfe',
      'outl 0xcf8 0x80000064',
      'outl 0xcfc 0x0',
      'outl 0xcf8 0x80000060',
      'outl 0xcfc 0xb0000001',
      'writeb 0xb0019103 0xab',
    ]);
    // QEMU drops a port access that crosses the dword: refuse rather than lose it.
    await expect(pci.ioRead(fn, 0x3f, 2)).rejects.toThrow(RangeError);
  });
});

describe('cleanup', () => {
  test('kills tracked processes and removes temporary directories', async () => {
    const dir = makeTempDir();
    const child = spawnTracked('sleep', ['600']);
    await new Promise((resolve) => child.once('spawn', resolve));
    expect(leftovers().processes).toBe(1);
    await cleanupAll();
    expect(child.signalCode ?? child.exitCode).not.toBeNull();
    expect(existsSync(dir)).toBe(false);
    expect(leftovers()).toEqual({ processes: 0, directories: [] });
  });
});
