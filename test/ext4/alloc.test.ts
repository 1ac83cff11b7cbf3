/**
 * Unit tests of src/ext4/alloc.ts: the forward-only cursor never hands out a group's reserved
 * start (sparse_super2-style backups in groups 0, 1 and powers of 3, 5, 7; meta_bg descriptor
 * blocks in the first, second and last group of every 64), gaps are reused first, and a fixed
 * size is enforced with EXT4_NO_SPACE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockAllocator, mergeRuns, type Run } from '../../src/ext4/alloc.js';
import { BLOCKS_PER_GROUP, groupReservedBlocks } from '../../src/ext4/format.js';
import { RootforgeError } from '../../src/errors.js';

const G = BLOCKS_PER_GROUP; // 32768

function assertNoReserved(runs: Run[]): void {
  for (const r of runs) {
    for (let b = r.start; b < r.start + r.length; b++) assert.equal(BlockAllocator.reservedAt(b), 0, `block ${b} is reserved`);
  }
}

test('reserved group starts: superblock backups and meta_bg descriptor blocks', () => {
  // group 1: backup superblock + descriptor block; 2: none; 3, 9, 25, 49: backup only; 63: descriptor only
  assert.deepEqual([1, 2, 3, 4, 5, 9, 25, 27, 49, 63, 64, 65].map(groupReservedBlocks), [2, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  assert.equal(BlockAllocator.reservedAt(G), 2);
  assert.equal(BlockAllocator.reservedAt(G + 1), 1);
  assert.equal(BlockAllocator.reservedAt(G + 2), 0);
  assert.equal(BlockAllocator.reservedAt(2 * G), 0);
  assert.equal(BlockAllocator.reservedAt(3 * G), 1);
});

test('takeFromCursor stops before a reserved start and resumes after it', () => {
  const a = new BlockAllocator(G - 10);
  const first = a.takeFromCursor(100);
  assert.deepEqual(first, { start: G - 10, length: 10 });
  const second = a.takeFromCursor(100);
  assert.deepEqual(second, { start: G + 2, length: 100 });
  // groups 2 has nothing reserved: a run crosses from group 1 into group 2 unbroken, and stops at group 3
  const third = a.takeFromCursor(3 * G);
  assert.deepEqual(third, { start: G + 102, length: 3 * G - (G + 102) });
  assertNoReserved([first, second, third]);
});

test('allocate never returns a reserved block over many groups, and counts add up', () => {
  const a = new BlockAllocator(100);
  const all: Run[] = [];
  let total = 0;
  for (let i = 0; i < 200; i++) {
    const n = 1 + ((i * 7919) % 9000);
    const runs = a.allocate(n);
    assert.equal(runs.reduce((s, r) => s + r.length, 0), n);
    all.push(...runs);
    total += n;
  }
  assert.ok(a.next > 27 * G, 'crossed many groups');
  assertNoReserved(all);
  // runs are disjoint
  const sorted = [...all].sort((x, y) => x.start - y.start);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i - 1]!.start + sorted[i - 1]!.length <= sorted[i]!.start);
  let reservedBelow = 0;
  for (let g = 0; g * G < a.next; g++) if (g > 0) reservedBelow += groupReservedBlocks(g);
  assert.equal(total + 100 + reservedBelow, a.next, 'every block below the cursor is handed out or reserved');
});

test('allocateContiguous leaves a too-short stretch as a gap, and allocate fills gaps first', () => {
  const a = new BlockAllocator(G - 50);
  const start = a.allocateContiguous(100);
  assert.equal(start, G + 2);
  assert.deepEqual(a.freeGaps(), [{ start: G - 50, length: 50 }]);
  const runs = a.allocate(60);
  assert.deepEqual(runs, [{ start: G - 50, length: 50 }, { start: G + 102, length: 10 }]);
  assert.equal(a.gapBlocks(), 0);
  // a contiguous request that fits an existing gap takes it
  a.release({ start: 500, length: 30 });
  assert.equal(a.allocateContiguous(20), 500);
  assert.deepEqual(a.freeGaps(), [{ start: 520, length: 10 }]);
});

test('release merges neighbouring gaps; usedBelowCursor excludes them', () => {
  const a = new BlockAllocator(0);
  a.allocate(1000);
  a.release({ start: 100, length: 10 });
  a.release({ start: 120, length: 10 });
  a.release({ start: 110, length: 10 });
  a.release({ start: 0, length: 0 });
  assert.deepEqual(a.freeGaps(), [{ start: 100, length: 30 }]);
  assert.equal(a.next, 1002, 'group 0 starts with its superblock and descriptor block');
  assert.equal(a.usedBelowCursor(), 972);
});

test('a fixed size limit is EXT4_NO_SPACE, not a silent overrun', () => {
  const a = new BlockAllocator(10, 1000);
  a.allocate(900);
  assert.throws(() => a.allocate(200), (e: unknown) => e instanceof RootforgeError && e.code === 'EXT4_NO_SPACE');
});

test('mergeRuns joins only adjacent runs and does not alias its input', () => {
  const input = [{ start: 1, length: 2 }, { start: 3, length: 4 }, { start: 8, length: 1 }];
  const out = mergeRuns(input);
  assert.deepEqual(out, [{ start: 1, length: 6 }, { start: 8, length: 1 }]);
  assert.deepEqual(input[0], { start: 1, length: 2 });
});
