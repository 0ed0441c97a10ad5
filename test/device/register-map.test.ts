import { DeviceDescriptionError } from '../../lib/errors';
import { RegisterMap, type RegisterWrite } from '../../lib/register-map';

function read(map: RegisterMap, offset: number, size: number): Buffer {
  const data = Buffer.alloc(size, 0xaa);
  map.read(offset, data);
  return data;
}

function write(map: RegisterMap, offset: number, bytes: number[] | Buffer): void {
  map.write(offset, Buffer.from(bytes));
}

describe('RegisterMap', () => {
  test('reset values read back at every width', () => {
    const map = new RegisterMap({
      a: { offset: 0, width: 1, reset: 0x12 },
      b: { offset: 2, width: 2, reset: 0x3456 },
      c: { offset: 4, width: 4, reset: 0x89abcdef },
      d: { offset: 8, width: 8, reset: 0x0102030405060708n },
    });
    expect(read(map, 0, 1)[0]).toBe(0x12);
    expect(read(map, 2, 2).readUInt16LE()).toBe(0x3456);
    expect(read(map, 4, 4).readUInt32LE()).toBe(0x89abcdef);
    expect(read(map, 8, 8).readBigUInt64LE()).toBe(0x0102030405060708n);
    expect(map.get('c')).toBe(0x89abcdef);
    expect(map.get('d')).toBe(0x0102030405060708n);
    expect(map.size).toBe(16);
    expect(map.names).toEqual(['a', 'b', 'c', 'd']);
    expect(map.offsetOf('c')).toBe(4);
  });

  test('gaps read as zero and ignore writes; reads span registers', () => {
    const map = new RegisterMap({
      lo: { offset: 0, width: 2, reset: 0xbbaa, rw: true },
      hi: { offset: 4, width: 2, reset: 0xddcc, rw: true },
    });
    expect([...read(map, 0, 8)]).toEqual([0xaa, 0xbb, 0, 0, 0xcc, 0xdd, 0, 0]);
    expect([...read(map, 1, 4)]).toEqual([0xbb, 0, 0, 0xcc]);
    write(map, 1, [1, 2, 3, 4]);
    expect(map.get('lo')).toBe(0x01aa);
    expect(map.get('hi')).toBe(0xdd04);
    expect([...read(map, 100, 3)]).toEqual([0, 0, 0]);
  });

  test('read-only, read-write and write-1-to-clear bits', () => {
    const map = new RegisterMap({
      ctrl: { offset: 0, width: 4, rw: 0x0000ffff, reset: 0xabcd0000 },
      status: { offset: 4, width: 4, w1c: 0xff, reset: 0x1ff },
      id: { offset: 8, width: 4, reset: 0x1234 },
      mixed: { offset: 12, width: 2, ro: 0xff00, reset: 0x5500 },
    });
    write(map, 0, Buffer.from([0x78, 0x56, 0x34, 0x12]));
    expect(map.get('ctrl')).toBe(0xabcd5678);
    write(map, 4, [0x05, 0xff, 0xff, 0xff]);
    expect(map.get('status')).toBe(0x1fa); // bits 0 and 2 cleared, bit 8 not w1c
    write(map, 4, [0x00]);
    expect(map.get('status')).toBe(0x1fa); // writing 0 clears nothing
    write(map, 8, [0xff, 0xff, 0xff, 0xff]);
    expect(map.get('id')).toBe(0x1234);
    write(map, 12, [0x11, 0x22]);
    expect(map.get('mixed')).toBe(0x5511);
  });

  test('a partial write changes only the bytes it covers', () => {
    const map = new RegisterMap({ r: { offset: 0, width: 4, rw: true, w1c: undefined } });
    map.set('r', 0x11223344);
    write(map, 2, [0xaa]);
    expect(map.get('r')).toBe(0x11aa3344);
    const map2 = new RegisterMap({ s: { offset: 0, width: 4, w1c: true, reset: 0xffffffff } });
    write(map2, 1, [0xff]);
    expect(map2.get('s')).toBe(0xffff00ff);
  });

  test('read hooks supply the value; write hooks see what happened', () => {
    let ticks = 7;
    const writes: RegisterWrite<number>[] = [];
    const wide: RegisterWrite<bigint>[] = [];
    const map = new RegisterMap({
      count: { offset: 0, width: 4, read: () => ticks },
      doorbell: { offset: 4, width: 4, rw: 0xff, write: (w) => writes.push(w) },
      big: { offset: 8, width: 8, rw: true, write: (w) => wide.push(w) },
      inverted: { offset: 16, width: 4, read: (stored) => ~stored },
    });
    expect(read(map, 0, 4).readUInt32LE()).toBe(7);
    ticks = 0x01020304;
    expect([...read(map, 1, 2)]).toEqual([0x03, 0x02]);
    write(map, 4, [0x10, 0x20]);
    expect(writes).toEqual([{ value: 0x2010, mask: 0xffff, previous: 0, current: 0x10 }]);
    write(map, 12, [1, 2, 3, 4]);
    expect(wide).toEqual([
      { value: 0x0403020100000000n, mask: 0xffffffff00000000n, previous: 0n, current: 0x0403020100000000n },
    ]);
    expect(read(map, 16, 4).readUInt32LE()).toBe(0xffffffff);
  });

  test('one write spanning two registers calls both hooks', () => {
    const seen: string[] = [];
    const map = new RegisterMap({
      a: { offset: 0, width: 2, rw: true, write: () => seen.push('a') },
      b: { offset: 2, width: 2, rw: true, write: () => seen.push('b') },
    });
    write(map, 1, [1, 2]);
    expect(seen).toEqual(['a', 'b']);
    expect(map.get('a')).toBe(0x0100);
    expect(map.get('b')).toBe(0x0002);
  });

  test('a throwing hook propagates to the caller', () => {
    const map = new RegisterMap({
      bad: { offset: 0, width: 4, read: () => { throw new Error('boom'); } },
    });
    expect(() => read(map, 0, 4)).toThrow('boom');
  });

  test('set, setBits, clearBits and reset', () => {
    const map = new RegisterMap({
      s: { offset: 0, width: 2, reset: 0x8000, w1c: true },
      q: { offset: 8, width: 8, reset: 5n },
    });
    map.setBits('s', 0x3);
    expect(map.get('s')).toBe(0x8003);
    map.clearBits('s', 0x8001);
    expect(map.get('s')).toBe(0x2);
    map.set('q', 0xffffffffffffffffn);
    map.reset();
    expect(map.get('s')).toBe(0x8000);
    expect(map.get('q')).toBe(5n);
  });

  test('the constructor does not call a subclass reset(), whose fields do not exist yet', () => {
    class Counting extends RegisterMap {
      readonly seen: string[] = [];
      constructor() {
        super({ r: { offset: 0, width: 4, reset: 7, rw: true } });
      }
      override reset(): void {
        this.seen.push('reset');
        super.reset();
      }
    }
    const map = new Counting();
    expect(map.get('r')).toBe(7);
    map.set('r', 1);
    map.reset();
    expect(map.seen).toEqual(['reset']);
    expect(map.get('r')).toBe(7);
  });

  test('negative values from hooks are taken as two\'s complement', () => {
    const map = new RegisterMap({ r: { offset: 0, width: 4, read: () => -2 } });
    expect(read(map, 0, 4).readUInt32LE()).toBe(0xfffffffe);
  });

  test('invalid maps are refused with the field named', () => {
    const bad = (specs: object, field: string): void => {
      try {
        new RegisterMap(specs as never);
        throw new Error('accepted');
      } catch (err) {
        expect(err).toBeInstanceOf(DeviceDescriptionError);
        expect((err as DeviceDescriptionError).field).toBe(field);
      }
    };
    bad({ a: { offset: 0, width: 4 }, b: { offset: 2, width: 2 } }, 'registers.b');
    bad({ a: { offset: -1, width: 4 } }, 'registers.a.offset');
    bad({ a: { offset: 0, width: 3 } }, 'registers.a.width');
    bad({ a: { offset: 0, width: 2, reset: 0x10000 } }, 'registers.a.reset');
    bad({ a: { offset: 0, width: 8, reset: 1 } }, 'registers.a.reset');
    bad({ a: { offset: 0, width: 4, rw: 1, w1c: 1 } }, 'registers.a');
    bad({ a: { offset: 0, width: 4, rw: 3, ro: 1 } }, 'registers.a');
    bad({ a: { offset: 0, width: 4, read: 5 } }, 'registers.a.read');
    expect(() => new RegisterMap({ a: { offset: 0, width: 4 } }).get('b' as 'a')).toThrow(RangeError);
  });
});
