import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecimal, parsePaxTime, readBase256, readNumericField } from '../../src/tar/numeric.js';

const field = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

test('octal fields: terminators, leading spaces, empty', () => {
  assert.equal(readNumericField(field('0000644\0'), 0, 8), 0o644);
  assert.equal(readNumericField(field('   644 \0'), 0, 8), 0o644); // old tars right-align with spaces
  assert.equal(readNumericField(field('00000000017\0'), 0, 12), 15);
  assert.equal(readNumericField(field('\0\0\0\0\0\0\0\0'), 0, 8), 0);
  assert.equal(readNumericField(field('        '), 0, 8), 0); // plexus-archiver fills uid/gid with spaces
  // 12 digits with no terminator: the largest octal size (64 GiB - 1)
  assert.equal(readNumericField(field('777777777777'), 0, 12), 0o777777777777);
  // digits stop at the first non-octal byte
  assert.equal(readNumericField(field('0017\0' + '9999999'), 0, 12), 0o17);
});

test('base-256 fields: positive, negative, and beyond 2^53', () => {
  // 2 GiB + 1 as GNU tar writes it: 0x80, then big-endian
  const twoGiB = [0x80, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1];
  assert.equal(readNumericField(field(twoGiB), 0, 12), 2 ** 31 + 1);
  // uid 2097152 (one past the 7-digit octal range), 8-byte field
  assert.equal(readNumericField(field([0x80, 0, 0, 0, 0, 0x20, 0, 0]), 0, 8), 2097152);
  // -1 and -315619200 (1960-01-01, what GNU tar writes for pre-epoch mtimes)
  assert.equal(readBase256(field(Array(12).fill(0xff)), 0, 12), -1);
  assert.equal(readNumericField(field([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xed, 0x30, 0x08, 0x80]), 0, 12), -315619200);
  // 2^53 exactly does not fit a Number safely
  assert.equal(readNumericField(field([0x80, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0]), 0, 12), 'overflow');
  assert.equal(readNumericField(field([0x80, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 12), 2 ** 53 - 1);
  // a huge positive that would wrap in 64 bits
  assert.equal(readNumericField(field([0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 12), 'overflow');
});

test('PAX decimal numbers are strict', () => {
  assert.equal(parseDecimal('0'), 0);
  assert.equal(parseDecimal('00000004612'), 4612);
  assert.equal(parseDecimal('9007199254740991'), 2 ** 53 - 1);
  assert.equal(parseDecimal('9007199254740992'), undefined);
  assert.equal(parseDecimal('-1976941111365972743'), undefined);
  assert.equal(parseDecimal(''), undefined);
  assert.equal(parseDecimal('12a'), undefined);
  assert.equal(parseDecimal(' 12'), undefined);
});

test('PAX times keep nanoseconds exactly and count negatives down from the epoch', () => {
  const t = (s: string) => parsePaxTime(s)?.time;
  assert.deepEqual(t('1795308893.768511305'), { sec: 1795308893, nsec: 768511305 });
  assert.deepEqual(t('5.00000005'), { sec: 5, nsec: 50 }); // not 5.00000005 * 1e9 through a float
  assert.deepEqual(t('1.123456789999'), { sec: 1, nsec: 123456789 }); // truncated beyond 9 digits
  assert.deepEqual(t('-1.5'), { sec: -2, nsec: 500000000 });
  assert.deepEqual(t('-315619199.5'), { sec: -315619200, nsec: 500000000 }); // GNU tar's 1960-01-01T00:00:00.5Z
  assert.deepEqual(t('-2146608000'), { sec: -2146608000, nsec: 0 });
  assert.deepEqual(t('-0.000000001'), { sec: -1, nsec: 999999999 });
  assert.deepEqual(t('-0'), { sec: 0, nsec: 0 });
  assert.deepEqual(t('7'), { sec: 7, nsec: 0 });
  assert.deepEqual(t('.5'), { sec: 0, nsec: 500000000 });
  assert.equal(parsePaxTime('abc'), undefined);
  assert.equal(parsePaxTime(''), undefined);
  // libarchive's test_read_format_tar_pax_timestamps: junk after the number is ignored, but reported
  assert.deepEqual(parsePaxTime('1748089464.951928467a'), { time: { sec: 1748089464, nsec: 951928467 }, trailing: true });
  assert.equal(parsePaxTime('12')?.trailing, false);
});
