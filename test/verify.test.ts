// verify(): reads every record of every tier and checks its checksums; a
// whole store reports every record and no damage; damage found is listed
// (tier, file, id, reason), not thrown; a closed store is STORE_CLOSED.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MemoryInput, Tier } from '../lib/index.js';
import { expectTierStoreError, useScratch } from './helpers/store.js';

const DIMS = 6;

function record(i: number): MemoryInput {
  return {
    id: `rec-${i}`,
    content: `UNIQUE-CONTENT-${String(i).padStart(4, '0')}-${'é'.repeat(i % 5)}`,
    embedding: Array.from({ length: DIMS }, (_, j) => Math.sin(i + j)),
    metadata: { i },
  };
}

/** Flips one byte of every copy of `needle` in the store's files whose name starts with `prefix`. */
function damage(dir: string, prefix: string, needle: string): number {
  let flipped = 0;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const file = path.join(dir, name);
    const bytes = fs.readFileSync(file);
    const fd = fs.openSync(file, 'r+');
    try {
      for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
        fs.writeSync(fd, Buffer.from([bytes[at + 2]! ^ 0x20]), 0, 1, at + 2);
        flipped++;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return flipped;
}

describe('verify()', () => {
  const scratch = useScratch();

  it('a whole store: every record of every tier read, no damage; the same after reopen', () => {
    const p = scratch.storePath();
    const store = scratch.open(p, { dimensions: DIMS, hotCapacity: 20, warmCapacity: 30 });
    const records = Array.from({ length: 100 }, (_, i) => record(i));
    store.putMany(records);
    store.migrate();
    const counts = store.counts();
    expect(counts.hot > 0 && counts.warm > 0 && counts.cold > 0, 'records in every tier').toBe(true);
    const report = store.verify();
    expect(report.records).toBe(100);
    expect(report.damaged).toEqual([]);
    const bytes = records.reduce(
      (sum, r) => sum + Buffer.byteLength(r.id) + Buffer.byteLength(r.content) + Buffer.byteLength(JSON.stringify(r.metadata)) + 4 * DIMS, 0);
    expect(report.bytes).toBe(bytes);
    store.close();
    const again = scratch.open(p, { readOnly: true });
    expect(again.verify()).toEqual(report);
  });

  it('damage in a warm and a cold record is listed with tier, file and id, and the rest still counts', () => {
    const p = scratch.storePath();
    const store = scratch.open(p, { dimensions: DIMS, hotCapacity: 10, warmCapacity: 10 });
    store.putMany(Array.from({ length: 40 }, (_, i) => record(i)));
    store.migrate();
    store.flush();
    const inTier = (tier: Tier) => {
      for (let i = 0; i < 40; i++) if (store.get(record(i).id)?.tier === tier) return i;
      throw new Error(`no record in ${tier}`);
    };
    const warm = inTier('warm');
    const cold = inTier('cold');
    expect(damage(p, 'warm-var', record(warm).content.slice(0, 19))).toBeGreaterThan(0);
    expect(damage(p, 'cold-', record(cold).content.slice(0, 19))).toBeGreaterThan(0);
    const report = store.verify();
    expect(report.records).toBe(38);
    const found = report.damaged.map((d) => [d.tier, d.id]).sort();
    expect(found).toEqual([['cold', record(cold).id], ['warm', record(warm).id]].sort());
    for (const d of report.damaged) {
      expect(path.dirname(d.file)).toBe(path.resolve(p));
      expect(d.reason).toMatch(/checksum|mismatch|damaged/i);
    }
    // Reading a damaged record is CORRUPTION, never a wrong answer.
    expectTierStoreError(() => store.get(record(cold).id), 'CORRUPTION', 'get of the damaged cold record');
  });

  it('a closed store is STORE_CLOSED', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    store.close();
    expectTierStoreError(() => store.verify(), 'STORE_CLOSED', 'verify after close');
  });
});
