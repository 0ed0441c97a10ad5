/**
 * The client's migration messages, byte for byte, and its view of the state
 * machine, checked against the protocol specification without a server.
 */
import { ProtocolError } from '../../lib';
import { DeviceFeature, DeviceState, FeatureFlag, MIGRATION_ARCS } from '../../lib/client';
import {
  bitmapSize,
  decodeDataRead,
  decodeLoggingReport,
  encodeDataRead,
  encodeDataWrite,
  encodeDeviceState,
  encodeFeature,
  encodeLoggingStart,
  stateOfWire,
  wireState,
} from '../../lib/client/migration-protocol';

test('a SET of MIG_DEVICE_STATE: argsz, feature | SET, state, data_fd 0', () => {
  const b = encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.SET, encodeDeviceState(DeviceState.STOP_COPY));
  expect([...b]).toEqual([16, 0, 0, 0, 2, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
});

test('a GET leaves room for the reply in argsz', () => {
  const b = encodeFeature(DeviceFeature.MIGRATION, FeatureFlag.GET, new Uint8Array(0), 16);
  expect([...b]).toEqual([16, 0, 0, 0, 1, 0, 1, 0]);
});

test('DMA_LOGGING_START: page size, range count, reserved, ranges', () => {
  const b = encodeLoggingStart(4096, [{ iova: 0x10000, length: 0x2000 }]);
  expect(b.length).toBe(32);
  expect(b.readBigUInt64LE(0)).toBe(4096n);
  expect(b.readUInt32LE(8)).toBe(1);
  expect(b.readBigUInt64LE(16)).toBe(0x10000n);
  expect(b.readBigUInt64LE(24)).toBe(0x2000n);
});

test('the dirty bitmap is whole u64s, one bit per page, least significant first', () => {
  expect(bitmapSize(4096, 4096)).toBe(8);
  expect(bitmapSize(65 * 4096, 4096)).toBe(16);
  const payload = Buffer.alloc(8 + 24 + 16);
  payload[32] = 0b101; // pages 0 and 2
  payload[32 + 8] = 0b10; // page 65
  const report = decodeLoggingReport(payload, 0x100000, 66 * 4096, 4096);
  expect(report.pages).toEqual([0x100000, 0x100000 + 2 * 4096, 0x100000 + 65 * 4096]);
  expect(() => decodeLoggingReport(payload.subarray(0, 40), 0, 66 * 4096, 4096)).toThrow(ProtocolError);
});

test('MIG_DATA_READ and MIG_DATA_WRITE', () => {
  expect([...encodeDataRead(100)]).toEqual([108, 0, 0, 0, 100, 0, 0, 0]);
  expect([...encodeDataWrite(Buffer.from([9, 8]))]).toEqual([10, 0, 0, 0, 2, 0, 0, 0, 9, 8]);
  const reply = Buffer.from([11, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 0]);
  expect([...decodeDataRead(reply, 4)]).toEqual([1, 2, 3]);
  expect(() => decodeDataRead(reply, 2)).toThrow(ProtocolError);
});

test('states map to the wire and back; the P2P states are not vfio-user states', () => {
  for (const state of ['running', 'stop', 'stop-copy', 'resuming', 'pre-copy', 'error'] as const) {
    expect(stateOfWire(wireState(state))).toBe(state);
  }
  expect(wireState('pre-copy')).toBe(6);
  expect(() => stateOfWire(DeviceState.RUNNING_P2P)).toThrow(ProtocolError);
});

test('the arcs are the specification\'s: STOP_COPY never goes back to PRE_COPY, nothing goes to ERROR', () => {
  expect(MIGRATION_ARCS['stop-copy']).toEqual(['stop']);
  expect(Object.values(MIGRATION_ARCS).flat()).not.toContain('error');
  expect(MIGRATION_ARCS.stop).toEqual(['running', 'stop-copy', 'resuming']);
});
