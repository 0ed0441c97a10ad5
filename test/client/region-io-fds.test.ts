/**
 * GET_REGION_IO_FDS replies as the client reads them: the spec's 40-byte
 * entries and libvfio-user's 48-byte ones, and replies that do not add up.
 */
import { ProtocolError } from '../../lib/client';
import { parseIoFdEntries } from '../../lib/client/io-fd-client';

interface Entry {
  offset: bigint;
  size: bigint;
  fdIndex: number;
  type: number;
  flags: number;
  datamatch: bigint;
}

/** A reply payload of `entries` laid out `stride` bytes apart, datamatch at `datamatchAt`. */
function reply(entries: Entry[], stride: number, datamatchAt: number, argsz = 16 + stride * entries.length): Buffer {
  const b = Buffer.alloc(16 + stride * entries.length);
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(entries.length, 12);
  entries.forEach((e, i) => {
    const at = 16 + stride * i;
    b.writeBigUInt64LE(e.offset, at);
    b.writeBigUInt64LE(e.size, at + 8);
    b.writeUInt32LE(e.fdIndex, at + 16);
    b.writeUInt32LE(e.type, at + 20);
    b.writeUInt32LE(e.flags, at + 24);
    b.writeBigUInt64LE(e.datamatch, at + datamatchAt);
  });
  return b;
}

const doorbell: Entry = { offset: 0x100n, size: 4n, fdIndex: 0, type: 0, flags: 1, datamatch: 0xabn };
const anySize: Entry = { offset: 0x200n, size: 0n, fdIndex: 1, type: 0, flags: 0, datamatch: 0n };

describe('GET_REGION_IO_FDS entries', () => {
  test.each([
    ['the spec', 40, 32],
    ['libvfio-user', 48, 40],
  ])("%s's layout (%i bytes, datamatch at %i)", (_who, stride, datamatchAt) => {
    expect(parseIoFdEntries(reply([doorbell, anySize], stride, datamatchAt), 2, 2)).toEqual([
      { offset: 0x100, size: 4, fdIndex: 0, type: 'ioeventfd', flags: 1, datamatch: 0xabn },
      { offset: 0x200, size: 0, fdIndex: 1, type: 'ioeventfd', flags: 0 },
    ]);
  });

  test('an ioregionfd entry is listed with its type and no datamatch', () => {
    const entry = { ...doorbell, type: 1, flags: 1 };
    expect(parseIoFdEntries(reply([entry], 40, 32), 1, 1)).toEqual([{ offset: 0x100, size: 4, fdIndex: 0, type: 'ioregionfd', flags: 1 }]);
  });

  test.each<[string, Buffer, number, number, RegExp]>([
    ['entries neither 40 nor 48 bytes', reply([doorbell], 44, 32), 1, 1, /neither 40 nor 48/],
    ['argsz larger than the payload', reply([doorbell], 48, 40, 16 + 96), 2, 1, /do not fit/],
    ['an fd index past the fds sent', reply([{ ...doorbell, fdIndex: 2 }], 48, 40), 1, 2, /names fd 2; the reply has 2/],
    ['an unknown type', reply([{ ...doorbell, type: 7 }], 48, 40), 1, 1, /unknown type 7/],
  ])('%s is a ProtocolError', (_what, payload, count, fds, message) => {
    let caught: unknown;
    try {
      parseIoFdEntries(payload, count, fds);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as Error).message).toMatch(message);
  });

  test('no entries, no fds needed', () => {
    expect(parseIoFdEntries(Buffer.alloc(16), 0, 0)).toEqual([]);
  });
});
