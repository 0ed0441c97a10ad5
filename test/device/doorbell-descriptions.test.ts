/**
 * Every way a description's doorbells can be wrong throws a
 * DeviceDescriptionError naming the doorbell's field, when the device is
 * constructed; the valid forms are accepted.
 */
import { PciDevice, type DeviceDescription, type DoorbellDescription } from '../../lib';
import { descriptionError } from '../support/description-error';

const base: DeviceDescription = {
  vendorId: 0x1b36,
  deviceId: 0x0100,
  bars: [
    { index: 0, size: 0x1000 },
    { index: 2, size: 0x100, access: { sizes: [4], aligned: true } },
    { index: 4, size: 0x4000, bits64: true, mapped: [{ offset: 0x1000, size: 0x1000 }] },
  ],
  msix: { vectors: 4, bar: 0, tableOffset: 0x800 },
};
const bell = (fields: Partial<DoorbellDescription> & Record<string, unknown>): DoorbellDescription => ({ bar: 0, offset: 0x100, size: 4, ...fields });

/** [what, doorbells, field named, message]. */
const cases: Array<[string, unknown, string, RegExp]> = [
  ['not an array', { bar: 0, offset: 0, size: 4 }, 'doorbells', /array/],
  ['not an object', [42], 'doorbells[0]', /object/],
  ['misspelt field', [bell({ ofset: 0x10 })], 'doorbells[0].ofset', /not a field/],
  ['BAR the device lacks', [bell({ bar: 3 })], 'doorbells[0].bar', /no BAR 3 \(it has 0, 2, 4\)/],
  ['upper half of a 64-bit BAR', [bell({ bar: 5 })], 'doorbells[0].bar', /no BAR 5/],
  ['BAR index out of range', [bell({ bar: 6 })], 'doorbells[0].bar', /integer/],
  ['size 3', [bell({ size: 3 })], 'doorbells[0].size', /1, 2, 4 or 8/],
  ['size 16', [bell({ size: 16 })], 'doorbells[0].size', /1, 2, 4 or 8/],
  ['negative offset', [bell({ offset: -4 })], 'doorbells[0].offset', /integer/],
  ['past the end of the BAR', [bell({ offset: 0xffe })], 'doorbells[0].offset', /outside BAR 0/],
  ['on the MSI-X table', [bell({ offset: 0x810 })], 'doorbells[0].offset', /MSI-X table/],
  ['on the MSI-X PBA', [bell({ offset: 0x840 })], 'doorbells[0].offset', /MSI-X PBA/],
  ['in a mapped range', [bell({ bar: 4, offset: 0x1ffc })], 'doorbells[0].offset', /mapped range 0x1000\.\.0x2000/],
  ['a size the BAR refuses', [bell({ bar: 2, offset: 0, size: 2 })], 'doorbells[0].size', /refuse 2-byte/],
  ['unaligned in an aligned BAR', [bell({ bar: 2, offset: 2 })], 'doorbells[0].offset', /aligned/],
  ['datamatch wider than the size', [bell({ size: 1, datamatch: 0x100 })], 'doorbells[0].datamatch', /does not fit/],
  ['negative datamatch', [bell({ datamatch: -1n })], 'doorbells[0].datamatch', /does not fit/],
  ['fractional datamatch', [bell({ datamatch: 1.5 })], 'doorbells[0].datamatch', /integer/],
  ['datamatch as a string', [bell({ datamatch: '1' as unknown as number })], 'doorbells[0].datamatch', /number or a bigint/],
  ['empty name', [bell({ name: '' })], 'doorbells[0].name', /non-empty/],
  ['the same name twice', [bell({ name: 'tx' }), bell({ name: 'tx', offset: 0x200 })], 'doorbells[1].name', /doorbells\[0\]/],
  ['the same place twice', [bell({}), bell({})], 'doorbells[1]', /no datamatch tells them apart/],
  ['the same place, one without datamatch', [bell({ datamatch: 1 }), bell({})], 'doorbells[1]', /no datamatch/],
  ['the same place and datamatch', [bell({ datamatch: 1 }), bell({ datamatch: 1n })], 'doorbells[1]', /no datamatch/],
];

describe('bad doorbells', () => {
  test.each(cases)('%s', (_what, doorbells, field, message) => {
    descriptionError(() => new PciDevice({ ...base, doorbells: doorbells as DoorbellDescription[] }), field, message);
  });

  test('valid doorbells are accepted', () => {
    const doorbells: DoorbellDescription[] = [
      bell({ name: 'tx' }),
      // One notify register, a doorbell per queue number.
      bell({ offset: 0x200, size: 2, datamatch: 0 }),
      bell({ offset: 0x200, size: 2, datamatch: 1 }),
      // Same offset, another size: another doorbell.
      bell({ offset: 0x200, size: 4 }),
      bell({ bar: 2, offset: 0x10 }),
      bell({ bar: 4, offset: 0x3ff8, size: 8, datamatch: 0xffffffffffffffffn }),
      bell({ offset: 0x850 }), // just after the PBA
    ];
    expect(() => new PciDevice({ ...base, doorbells })).not.toThrow();
  });
});
