import {
  dsnCapability,
  extendedVendorCapability,
  msiCapability,
  msixCapability,
  msixPbaSize,
  msixTableSize,
  pcieCapability,
  pmCapability,
  vendorCapability,
} from '../../lib/capabilities';
import { DeviceDescriptionError } from '../../lib/errors';

const le16 = (b: Uint8Array, o: number): number => Buffer.from(b).readUInt16LE(o);
const le32 = (b: Uint8Array, o: number): number => Buffer.from(b).readUInt32LE(o);

describe('capability builders', () => {
  test('power management', () => {
    const pm = pmCapability();
    expect(pm.length).toBe(8);
    expect(pm[0]).toBe(0x01);
    expect(le16(pm, 2) & 0x7).toBe(3); // PM 1.2
    expect(le16(pm, 4)).toBe(0x0008); // D0, No_Soft_Reset
    const full = pmCapability({ d1: true, d2: true, pmeSupport: 0x19, noSoftReset: false, version: 2 });
    expect(le16(full, 2)).toBe(2 | (1 << 9) | (1 << 10) | (0x19 << 11));
    expect(le16(full, 4)).toBe(0);
    expect(() => pmCapability({ pmeSupport: 0x20 })).toThrow(DeviceDescriptionError);
  });

  test('MSI', () => {
    const msi = msiCapability({ vectors: 8 });
    expect(msi.length).toBe(24);
    expect(msi[0]).toBe(0x05);
    expect(le16(msi, 2)).toBe((3 << 1) | 0x80 | 0x100);
    expect(le16(msiCapability({ vectors: 1, address64: false, perVectorMask: false }), 2)).toBe(0);
    expect(() => msiCapability({ vectors: 3 as 2 })).toThrow(DeviceDescriptionError);
  });

  test('MSI-X', () => {
    const cap = msixCapability({ vectors: 17, tableBar: 1, tableOffset: 0x2000, pbaBar: 2, pbaOffset: 0x800 });
    expect(cap.length).toBe(12);
    expect(cap[0]).toBe(0x11);
    expect(le16(cap, 2)).toBe(16);
    expect(le32(cap, 4)).toBe(0x2001);
    expect(le32(cap, 8)).toBe(0x802);
    expect(msixTableSize(17)).toBe(272);
    expect(msixPbaSize(17)).toBe(8);
    expect(msixPbaSize(65)).toBe(16);
    expect(() => msixCapability({ vectors: 2049, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0 })).toThrow(
      DeviceDescriptionError,
    );
    expect(() => msixCapability({ vectors: 1, tableBar: 0, tableOffset: 4, pbaBar: 0, pbaOffset: 0x100 })).toThrow(
      /multiple of 8/,
    );
  });

  test('PCI Express', () => {
    const cap = pcieCapability();
    expect(cap.length).toBe(60);
    expect(cap[0]).toBe(0x10);
    expect(le16(cap, 2)).toBe(0x0002); // version 2, endpoint
    expect(le32(cap, 4) & 0x10000000).not.toBe(0); // FLR
    expect(le32(cap, 12)).toBe(0x11); // 2.5 GT/s x1
    const rc = pcieCapability({ deviceType: 9, flr: false, maxPayloadSize: 512 });
    expect(le16(rc, 2)).toBe(0x92);
    expect(le32(rc, 4) & 0x7).toBe(2);
    expect(le32(rc, 4) & 0x10000000).toBe(0);
    expect(le32(rc, 12)).toBe(0);
    expect(() => pcieCapability({ maxPayloadSize: 100 as 128 })).toThrow(DeviceDescriptionError);
  });

  test('vendor-specific, standard and extended', () => {
    const v = vendorCapability(new Uint8Array([1, 2, 3]));
    expect([...v]).toEqual([0x09, 0, 6, 1, 2, 3]);
    expect(() => vendorCapability(new Uint8Array(253))).toThrow(DeviceDescriptionError);
    const x = extendedVendorCapability({ vsecId: 0x1234, revision: 2, data: new Uint8Array([9, 8]) });
    expect(x.length).toBe(10);
    expect(le32(x, 0)).toBe(0x0001000b);
    expect(le32(x, 4)).toBe((0x1234 | (2 << 16) | (10 << 20)) >>> 0);
    expect([...x.subarray(8)]).toEqual([9, 8]);
  });

  test('device serial number', () => {
    const d = dsnCapability(0x0123456789abcdefn);
    expect(le32(d, 0)).toBe(0x00010003);
    expect(Buffer.from(d).readBigUInt64LE(4)).toBe(0x0123456789abcdefn);
    expect(() => dsnCapability(-1n)).toThrow(DeviceDescriptionError);
  });
});
