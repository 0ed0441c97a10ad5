/**
 * The migration stream: state larger than one message is streamed in
 * chunks no larger than asked, pre-copy data goes ahead of the stop, a
 * device may load its state in chunks, and a stream from another device,
 * another format or no stream at all is refused with a clear error while
 * the device keeps serving.
 */
import { MemoryRegion, MigrationStreamError, PciDevice, RegisterMap, type VfioUserServer } from '../../lib';
import { migrate, VfioUserClient } from '../../lib/client';
import { RecordType, StreamParser, type StreamIdentity } from '../../lib/migration-stream';
import { MigratableDevice } from '../fixtures/migratable-device';
import { connect, rejection, serve } from '../helpers';

const clients: VfioUserClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) {
    await client.close();
  }
});

async function connectWith(server: VfioUserServer, maxDataXferSize: number): Promise<VfioUserClient> {
  const client = await VfioUserClient.connect(server.socket, { maxDataXferSize });
  clients.push(client);
  return client;
}

function patterned(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    b[i] = (i * 7 + (i >> 12)) & 0xff;
  }
  return b;
}

async function stopCopyStream(client: VfioUserClient): Promise<Buffer> {
  await client.setMigrationState('stop-copy');
  const chunks: Buffer[] = [];
  for await (const chunk of client.migrationData()) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

describe('streaming', () => {
  test('a state larger than max_data_xfer_size goes in chunks no larger than asked', async () => {
    const a = new MigratableDevice({ blobSize: 3 * 1024 * 1024 + 5 });
    a.blob = patterned(a.blob.length);
    const b = new MigratableDevice();
    const clientA = await connectWith(serve(a), 64 * 1024);
    const clientB = await connectWith(serve(b), 64 * 1024);
    expect(clientA.migrationChunkSize).toBe(64 * 1024);
    const sizes: number[] = [];
    const result = await migrate(clientA, clientB, { onData: (_phase, bytes) => sizes.push(bytes) });
    expect(result.stopCopyBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(sizes.length).toBeGreaterThan(48);
    expect(Math.max(...sizes)).toBe(64 * 1024);
    expect(b.blob.equals(a.blob)).toBe(true);
  });

  test('a read asking for less gets less, and the stream ends with an empty read', async () => {
    const a = new MigratableDevice({ blobSize: 1000 });
    const client = await connect(serve(a));
    await client.setMigrationState('stop-copy');
    const first = await client.readMigrationData(10);
    expect(first.length).toBe(10);
    expect(first.subarray(0, 8).toString('latin1')).toBe('VFUMIGR\0');
    let total = first.length;
    for (;;) {
      const chunk = await client.readMigrationData(333);
      expect(chunk.length).toBeLessThanOrEqual(333);
      if (chunk.length === 0) {
        break;
      }
      total += chunk.length;
    }
    expect(total).toBeGreaterThan(1000);
    expect((await client.readMigrationData(333)).length).toBe(0);
  });

  test('pre-copy data is read while the source runs and reaches loadPreCopy', async () => {
    const a = new MigratableDevice({ preCopy: Buffer.from('warm-up data') });
    const b = new MigratableDevice({ preCopy: Buffer.alloc(1) });
    const clientA = await connect(serve(a));
    const clientB = await connect(serve(b));
    const phases: string[] = [];
    const result = await migrate(clientA, clientB, { onData: (phase) => phases.push(phase) });
    expect(result.preCopyBytes).toBeGreaterThan(12);
    expect(phases[0]).toBe('pre-copy');
    expect(b.loadedPreCopy.map((d) => d.toString())).toEqual(['warm-up data']);
    expect(a.events).toEqual(['stop']);
  });

  test('pre-copy data left unread when the source stops still comes first', async () => {
    const a = new MigratableDevice({ preCopy: Buffer.alloc(10000, 7), blobSize: 50 });
    a.blob = Buffer.alloc(50, 9);
    const b = new MigratableDevice({ preCopy: Buffer.alloc(1) });
    const clientA = await connect(serve(a));
    const clientB = await connect(serve(b));
    await clientB.setMigrationState('resuming');
    await clientA.setMigrationState('pre-copy');
    await clientB.writeMigrationData(await clientA.readMigrationData(100));
    await clientA.setMigrationState('stop-copy');
    for await (const chunk of clientA.migrationData()) {
      await clientB.writeMigrationData(chunk);
    }
    await clientB.setMigrationState('running');
    expect(b.loadedPreCopy[0].equals(Buffer.alloc(10000, 7))).toBe(true);
    expect(b.blob.equals(a.blob)).toBe(true);
  });

  test('with preCopy: false, the source goes straight to STOP_COPY', async () => {
    const a = new MigratableDevice({ preCopy: Buffer.from('unused') });
    const b = new MigratableDevice({ preCopy: Buffer.alloc(1) });
    const result = await migrate(await connect(serve(a)), await connect(serve(b)), { preCopy: false });
    expect(result.preCopyBytes).toBe(0);
    expect(b.loadedPreCopy).toEqual([]);
  });

  test('a device that opts in loads its state chunk by chunk', async () => {
    const a = new MigratableDevice({ blobSize: 300 * 1024 });
    a.blob = patterned(a.blob.length);
    const b = new MigratableDevice({ chunked: true });
    await migrate(await connectWith(serve(a), 64 * 1024), await connectWith(serve(b), 64 * 1024));
    expect(b.loadedChunks.length).toBeGreaterThan(4);
    expect(b.loadedChunks[b.loadedChunks.length - 1]).toBe(0);
    expect(b.blob.equals(a.blob)).toBe(true);
  });

  test('the parser takes a stream one byte at a time', async () => {
    const a = new MigratableDevice({ blobSize: 100 });
    const stream = await stopCopyStream(await connect(serve(a)));
    const seen: string[] = [];
    const parser = new StreamParser({
      identity: (id: StreamIdentity) => seen.push(`identity ${id.deviceId}`),
      data: (type, piece, end) => {
        if (end) {
          seen.push(`data ${type}`);
        }
        void piece;
      },
      library: () => seen.push('library'),
      end: () => seen.push('end'),
    }, 1 << 20);
    for (let i = 0; i < stream.length; i++) {
      parser.write(stream.subarray(i, i + 1));
    }
    expect(parser.complete).toBe(true);
    expect(seen[0]).toBe(`identity ${0x11e1}`);
    expect(seen).toContain('library');
    expect(seen).toContain(`data ${RecordType.DEVICE}`);
    expect(seen[seen.length - 1]).toBe('end');
  });
});

test('a save() that fails mid-stream fails the read with its errno, and the device serves on', async () => {
  const a = new MigratableDevice({ blobSize: 200 * 1024 });
  const server = serve(a);
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  const client = await connect(server);
  a.saveFailure = Object.assign(new Error('disk on fire'), { errno: 28 });
  await client.setMigrationState('stop-copy');
  expect((await client.readMigrationData(16)).length).toBe(16);
  expect((await rejection(client.readMigrationData(65536))).code).toBe('ENOSPC');
  expect(errors.map((e) => e.message)).toEqual(['disk on fire']);
  await client.setMigrationState('running');
  expect(await client.read32(0, 0)).toBe(0);
});

test('migration: true carries the register maps and memory regions alone', async () => {
  const make = (): { device: PciDevice; regs: RegisterMap; ram: MemoryRegion } => {
    const regs = new RegisterMap({ a: { offset: 0, width: 4, rw: true }, b: { offset: 8, width: 8, rw: true } });
    const ram = new MemoryRegion(64);
    const device = new PciDevice({
      vendorId: 0x1b36,
      deviceId: 0x7777,
      bars: [{ index: 0, size: 0x100, handler: regs }, { index: 1, size: 64, handler: ram }],
      migration: true,
    });
    return { device, regs, ram };
  };
  const a = make();
  const b = make();
  const clientA = await connect(serve(a.device));
  await clientA.write32(0, 0, 0x01020304);
  await clientA.write64(0, 8, 0x1122334455667788n);
  await clientA.writeBar(1, 60, Buffer.from('tail'));
  await migrate(clientA, await connect(serve(b.device)));
  expect(b.regs.get('a')).toBe(0x01020304);
  expect(b.regs.get('b')).toBe(0x1122334455667788n);
  expect(b.ram.buffer.equals(a.ram.buffer)).toBe(true);
});

describe('refused streams', () => {
  async function refuse(stream: Buffer, message: RegExp): Promise<void> {
    const b = new MigratableDevice();
    b.counter = 7;
    const server = serve(b);
    const errors: Error[] = [];
    server.on('error', (e) => errors.push(e));
    const client = await connect(server);
    await client.write32(0, 4, 0x1234);
    await client.setMigrationState('resuming');
    expect((await rejection(client.writeMigrationData(stream))).code).toBe('EINVAL');
    expect(errors[0]).toBeInstanceOf(MigrationStreamError);
    expect(errors[0].message).toMatch(message);
    // Nothing of it was loaded, and the device serves on.
    await client.reset();
    expect(await client.getMigrationState()).toBe('running');
    expect(b.counter).toBe(7);
  }

  test('that the device cannot load: nothing of the library\'s share is applied either', async () => {
    const a = new MigratableDevice();
    const clientA = await connect(serve(a));
    await clientA.write32(0, 4, 0x5555);
    const stream = await stopCopyStream(clientA);
    const b = new MigratableDevice();
    const server = serve(b);
    const errors: Error[] = [];
    server.on('error', (e) => errors.push(e));
    const client = await connect(server);
    await client.write32(0, 4, 0x1111);
    jest.spyOn(b.description.migration as { load: (s: Buffer) => void }, 'load').mockImplementation(() => {
      throw Object.assign(new Error('cannot take it'), { errno: 22 });
    });
    await client.setMigrationState('resuming');
    expect((await rejection(client.writeMigrationData(stream))).code).toBe('EINVAL');
    expect(errors[0].message).toBe('cannot take it');
    expect(await rejection(client.setMigrationState('stop'))).toMatchObject({ code: 'EINVAL' });
    expect(b.regs.get('value')).toBe(0x1111);
  });

  test('from a device with another ID', async () => {
    const stream = await stopCopyStream(await connect(serve(new MigratableDevice({ deviceId: 0x2222 }))));
    await refuse(stream, /incompatible device: its device ID is 0x2222, this device's is 0x11e1/);
  });

  test('from a device with another state version', async () => {
    const stream = await stopCopyStream(await connect(serve(new MigratableDevice({ stateVersion: 2 }))));
    await refuse(stream, /device state version is 2, this device's is 1/);
  });

  test('of another format version', async () => {
    const stream = await stopCopyStream(await connect(serve(new MigratableDevice())));
    stream.writeUInt32LE(99, 8);
    await refuse(stream, /stream format version 99/);
  });

  test('with a library record larger than this device\'s can be', async () => {
    const full = await stopCopyStream(await connect(serve(new MigratableDevice())));
    // Preamble (16), identity record header (8) and JSON, then a LIBRARY header claiming 1 GiB.
    const identityEnd = 24 + full.readUInt32LE(20);
    const header = Buffer.from([3, 0, 0, 0, 0, 0, 0, 0x40]);
    await refuse(Buffer.concat([full.subarray(0, identityEnd), header]), /library state record of 1073741824 bytes/);
  });

  test('that is not a migration stream', async () => {
    await refuse(Buffer.from('definitely not a stream'), /bad magic/);
  });

  test('with pre-copy data for a device that takes none', async () => {
    const stream = await (async () => {
      const client = await connect(serve(new MigratableDevice({ preCopy: Buffer.from('abc') })));
      await client.setMigrationState('pre-copy');
      const chunks: Buffer[] = [];
      for await (const chunk of client.migrationData()) {
        chunks.push(chunk);
      }
      return Buffer.concat([...chunks, await stopCopyStream(client)]);
    })();
    await refuse(stream, /pre-copy data and this device takes none/);
  });
});
