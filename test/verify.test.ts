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

  it('a cold segment whose string offsets change under an open store: CORRUPTION from every read, never a crash', async () => {
    const p = scratch.storePath();
    const store = scratch.open(p, { dimensions: DIMS, hotCapacity: 0, skipWarm: true });
    store.putMany(Array.from({ length: 30 }, (_, i) => record(i)));
    store.migrate();
    expect(store.counts().cold).toBe(30);
    const file = path.join(p, fs.readdirSync(p).find((n) => /^cold-.*\.seg$/.test(n))!);
    // The column directory (docs/format/cold.md): 24-byte entries from byte
    // 64; content_offsets is column 11. Its first entries now point far past
    // the end of the file.
    const fd = fs.openSync(file, 'r+');
    try {
      const entry = Buffer.alloc(16);
      fs.readSync(fd, entry, 0, 16, 64 + 11 * 24);
      const column = Number(entry.readBigUInt64LE(0));
      const huge = Buffer.alloc(16);
      huge.writeBigUInt64LE(0x1_0000_0000n, 0);
      huge.writeBigUInt64LE(0x2_0000_0000n, 8);
      fs.writeSync(fd, huge, 0, 16, column);
    } finally {
      fs.closeSync(fd);
    }
    const first = record(0).id;
    expectTierStoreError(() => store.get(first), 'CORRUPTION', 'get');
    expectTierStoreError(() => [...store.iterate()], 'CORRUPTION', 'iterate');
    expectTierStoreError(() => [...store.iterate().arrow()], 'CORRUPTION', 'arrow');
    expectTierStoreError(() => store.list({ tier: 'cold' }), 'CORRUPTION', 'list');
    const report = store.verify();
    expect(report.damaged.map((d) => d.id)).toContain(first);
    expect(report.damaged.every((d) => d.tier === 'cold' && /offsets out of range|checksum/.test(d.reason))).toBe(true);
  });

  it('recall never returns a hit whose embedding is damaged: CORRUPTION instead', async () => {
    const p = scratch.storePath();
    const store = scratch.open(p, { dimensions: DIMS, hotCapacity: 0, skipWarm: true });
    const records = Array.from({ length: 30 }, (_, i) => record(i));
    store.putMany(records);
    store.migrate();
    const file = path.join(p, fs.readdirSync(p).find((n) => /^cold-.*\.seg$/.test(n))!);
    // Column 8 holds the embeddings, row-major: make row 5's first value huge,
    // so it would score far better than any other row for this query.
    const fd = fs.openSync(file, 'r+');
    try {
      const entry = Buffer.alloc(8);
      fs.readSync(fd, entry, 0, 8, 64 + 8 * 24);
      const column = Number(entry.readBigUInt64LE(0));
      const rows = Buffer.alloc(4 * DIMS);
      rows.writeFloatLE(1e6, 0);
      fs.writeSync(fd, rows, 0, 4 * DIMS, column + 5 * 4 * DIMS);
    } finally {
      fs.closeSync(fd);
    }
    const query = [1, 0, 0, 0, 0, 0];
    expectTierStoreError(() => store.recall(query, { k: 1 }), 'CORRUPTION', 'recall');
    await expect(store.recallAsync(query, { k: 1 })).rejects.toMatchObject({ code: 'CORRUPTION' });
  });

  it('a closed store is STORE_CLOSED', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    store.close();
    expectTierStoreError(() => store.verify(), 'STORE_CLOSED', 'verify after close');
  });
});
