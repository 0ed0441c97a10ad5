/**
 * The addon's migration callbacks: transition, read_data and write_data
 * reach the JS handlers synchronously, the data views are the library's own
 * buffers and are detached after the call, and a handler's exception or bad
 * answer becomes an error reply and an error() call.
 */
import { DeviceContext } from '../../lib/native';
import { VfioUserClient } from '../../lib/client';
import { makeIoViews, Recorder, startDevice, tempSocket } from './fixture';

class MigrationRecorder extends Recorder {
  kept: Buffer[] = [];
  written: number[][] = [];
  transitions: number[] = [];
  read: (into: Buffer) => number = () => 0;
  transitionError: Error | undefined;

  migrationTransition(state: number): void {
    if (this.transitionError !== undefined) {
      throw this.transitionError;
    }
    this.transitions.push(state);
  }
  migrationRead(into: Buffer): number {
    this.kept.push(into);
    return this.read(into);
  }
  migrationWrite(data: Buffer): void {
    this.kept.push(data);
    this.written.push([...data]);
  }
}

const contexts: DeviceContext[] = [];
const clients: VfioUserClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) {
    await c.close();
  }
  for (const ctx of contexts.splice(0)) {
    ctx.close();
  }
});

async function migratable(): Promise<{ handlers: MigrationRecorder; client: VfioUserClient }> {
  const socket = tempSocket();
  const handlers = new MigrationRecorder();
  const ctx = new DeviceContext(socket, handlers, makeIoViews());
  contexts.push(ctx);
  ctx.pciInit(3);
  ctx.setIds(0x1b36, 0x0100, 0, 0);
  ctx.setupMigration();
  ctx.realize();
  ctx.start();
  const client = await VfioUserClient.connect(socket);
  clients.push(client);
  return { handlers, client };
}

test('setupMigration needs the three migration handlers', () => {
  const { ctx } = startDevice();
  contexts.push(ctx);
  expect(() => ctx.setupMigration()).toThrow(/migrationTransition, migrationRead and migrationWrite/);
});

test('transitions reach migrationTransition as vfu_migr_state_t, one per step', async () => {
  const { handlers, client } = await migratable();
  await client.setMigrationState('stop-copy');
  expect(handlers.transitions).toEqual([0, 2]); // STOP, STOP_AND_COPY
  handlers.transitionError = Object.assign(new Error('busy'), { errno: 16 });
  expect(await client.setMigrationState('running').catch((e: Error & { code: string }) => e.code)).toBe('EBUSY');
  expect(handlers.errors.map((e) => e.message)).toEqual(['busy']);
});

test('read_data fills the library buffer in place; the view is detached after the call', async () => {
  const { handlers, client } = await migratable();
  await client.setMigrationState('stop-copy');
  handlers.read = (into) => {
    into.fill(0x42, 0, 3);
    return 3;
  };
  expect([...(await client.readMigrationData(100))]).toEqual([0x42, 0x42, 0x42]);
  expect(handlers.kept[0].length).toBe(0);
  handlers.read = () => 101;
  expect(await client.readMigrationData(100).catch((e: Error & { code: string }) => e.code)).toBe('EIO');
  expect(handlers.errors[0].message).toMatch(/migrationRead/);
  handlers.read = () => {
    throw Object.assign(new Error('no space'), { errno: 28 });
  };
  expect(await client.readMigrationData(100).catch((e: Error & { code: string }) => e.code)).toBe('ENOSPC');
});

test('write_data gets a view of the request, detached after the call', async () => {
  const { handlers, client } = await migratable();
  await client.setMigrationState('resuming');
  await client.writeMigrationData(Buffer.from([1, 2, 3, 4, 5]));
  expect(handlers.written).toEqual([[1, 2, 3, 4, 5]]);
  expect(handlers.kept[0].length).toBe(0);
});
