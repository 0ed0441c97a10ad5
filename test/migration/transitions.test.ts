/**
 * The migration state machine through the client: every arc the protocol
 * allows, the paths the server takes for the others, and the transitions it
 * refuses, with the device's hooks and the server's events.
 */
import { MigrationTransitionError, PciDevice, type MigrationState, type VfioUserServer } from '../../lib';
import {
  Command,
  DeviceFeature,
  DeviceState,
  FeatureFlag,
  MIGRATION_ARCS,
  type VfioUserClient,
} from '../../lib/client';
import { encodeDeviceState, encodeFeature } from '../../lib/client/migration-protocol';
import { MigratableDevice } from '../fixtures/migratable-device';
import { connect, rejection, serve, serveAndConnect } from '../helpers';

/** Reads a whole valid stream from a device, leaving it in STOP. */
async function streamOf(client: VfioUserClient): Promise<Buffer> {
  await client.setMigrationState('stop-copy');
  const chunks: Buffer[] = [];
  for await (const chunk of client.migrationData()) {
    chunks.push(chunk);
  }
  await client.setMigrationState('stop');
  return Buffer.concat(chunks);
}

function record(server: VfioUserServer): Array<[MigrationState, MigrationState]> {
  const steps: Array<[MigrationState, MigrationState]> = [];
  server.on('migration', (state, previous) => steps.push([previous, state]));
  return steps;
}

describe('migration states through the client', () => {
  test('the device offers STOP_COPY and PRE_COPY and starts RUNNING', async () => {
    const { client } = await serveAndConnect(new MigratableDevice());
    expect(await client.getMigrationFeatures()).toEqual({ flags: 5, stopCopy: true, preCopy: true });
    expect(await client.getMigrationState()).toBe('running');
  });

  test('a device without migration offers none', async () => {
    const { client } = await serveAndConnect(new PciDevice({ vendorId: 1, deviceId: 2 }));
    expect((await rejection(client.getMigrationFeatures())).code).toBe('EINVAL');
    expect(await rejection(client.setMigrationState('stop'))).toBeInstanceOf(MigrationTransitionError);
  });

  const arcs = (Object.entries(MIGRATION_ARCS) as Array<[MigrationState, readonly MigrationState[]]>).flatMap(([from, tos]) =>
    tos.map((to) => [from, to] as const),
  );

  test.each(arcs)('the arc %s -> %s is one step', async (from, to) => {
    const device = new MigratableDevice();
    const server = serve(device);
    const client = await connect(server);
    const stream = await streamOf(client);
    await client.setMigrationState('running');
    // Get to `from` first (RESUMING with a whole stream, so that it may end).
    await client.setMigrationState(from);
    if (from === 'resuming') {
      await client.writeMigrationData(stream);
    }
    expect(await client.getMigrationState()).toBe(from);
    expect(device.migrationState).toBe(from);
    const steps = record(server);
    await client.setMigrationState(to);
    expect(steps).toEqual([[from, to]]);
    expect(await client.getMigrationState()).toBe(to);
    expect(device.migrationState).toBe(to);
    expect(server.migrationState).toBe(to);
  });

  test('other targets go the shortest way through STOP or RUNNING', async () => {
    const device = new MigratableDevice();
    const server = serve(device);
    const client = await connect(server);
    const steps = record(server);
    await client.setMigrationState('stop-copy');
    expect(steps.splice(0)).toEqual([['running', 'stop'], ['stop', 'stop-copy']]);
    await client.setMigrationState('running');
    expect(steps.splice(0)).toEqual([['stop-copy', 'stop'], ['stop', 'running']]);
    await client.setMigrationState('pre-copy');
    await client.setMigrationState('stop');
    expect(steps.splice(0)).toEqual([['running', 'pre-copy'], ['pre-copy', 'running'], ['running', 'stop']]);
    expect(device.events).toEqual(['stop', 'resume', 'stop']);
  });

  test('STOP_COPY -> PRE_COPY, ERROR and the P2P states are refused with a typed error', async () => {
    const device = new MigratableDevice();
    const { client } = await serveAndConnect(device);
    await client.setMigrationState('stop-copy');
    const err = await rejection(client.setMigrationState('pre-copy'));
    expect(err).toBeInstanceOf(MigrationTransitionError);
    expect(err).toMatchObject({ code: 'EINVAL', from: 'stop-copy', to: 'pre-copy' });
    expect(await rejection(client.setMigrationState('error'))).toMatchObject({ code: 'EINVAL', to: 'error' });
    for (const p2p of [DeviceState.RUNNING_P2P, DeviceState.PRE_COPY_P2P, 8]) {
      const request = encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.SET, encodeDeviceState(p2p));
      expect((await rejection(client.request(Command.DEVICE_FEATURE, request))).code).toBe('EINVAL');
    }
    expect(await client.getMigrationState()).toBe('stop-copy');
    expect(device.migrationState).toBe('stop-copy');
  });

  test('RESUMING -> STOP is refused until the whole stream has arrived', async () => {
    const device = new MigratableDevice();
    const server = serve(device);
    const errors: Error[] = [];
    server.on('error', (e) => errors.push(e));
    const client = await connect(server);
    const stream = await streamOf(client);
    await client.setMigrationState('resuming');
    await client.writeMigrationData(stream.subarray(0, stream.length - 1));
    const err = await rejection(client.setMigrationState('stop'));
    expect(err).toMatchObject({ code: 'EINVAL', from: 'resuming', to: 'stop' });
    expect(errors[0].message).toMatch(/ended before its end record/);
    await client.writeMigrationData(stream.subarray(stream.length - 1));
    await client.setMigrationState('running');
    expect(device.migrationState).toBe('running');
  });

  test('a device whose onStop throws refuses the stop and keeps running', async () => {
    const device = new MigratableDevice();
    const server = serve(device);
    server.on('error', () => undefined);
    const client = await connect(server);
    device.failStop = true;
    expect(await rejection(client.setMigrationState('stop'))).toMatchObject({ code: 'EBUSY', from: 'running', to: 'stop' });
    expect(device.migrationState).toBe('running');
    device.failStop = false;
    await client.setMigrationState('stop');
    expect(device.migrationState).toBe('stop');
  });

  test('MIG_DATA_READ outside a saving state and MIG_DATA_WRITE outside RESUMING are refused', async () => {
    const { client } = await serveAndConnect(new MigratableDevice());
    expect((await rejection(client.readMigrationData(16))).code).toBe('EINVAL');
    expect((await rejection(client.writeMigrationData(Buffer.alloc(16)))).code).toBe('EINVAL');
  });
});
