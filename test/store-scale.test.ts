// Scale: 100,000 records of 768 dimensions (content about 200 bytes, seeded
// PRNG) through putMany in batches of 10,000, migrated down to cold by small
// capacities, closed, reopened and read back: exact counts, exact records for
// a sample through get, every id exactly once through a full iterate, and
// every embedding bit-exact through batched iteration.
//
// Records are regenerated from their index on demand, so the test never holds
// all 300 MB of embeddings at once.
import { describe, expect, it } from 'vitest';
import type { MemoryInput } from '../lib/index.js';
import { contentOfBytes, mulberry32, randInt, randomEmbedding } from './helpers/random.js';
import { checkMemory, expectedOf, firstBitDifference, pickCounts, useScratch } from './helpers/store.js';

const DIMS = 768;
const N = 100_000;
const BATCH = 10_000;

const idOf = (i: number) => `scale-${String(i).padStart(6, '0')}`;

function scaleRecord(i: number): MemoryInput {
  const rng = mulberry32(0x5ca1e000 ^ i);
  return {
    id: idOf(i),
    content: contentOfBytes(rng, randInt(rng, 150, 250), 0.02),
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: Math.fround(rng()),
    activation: Math.fround(rng()),
    createdAt: 1_500_000_000_000 + i * 7,
    metadata: { i, bucket: i % 97 },
  };
}

const indexOf = (id: string) => Number(id.slice('scale-'.length));

describe('scale', () => {
  const scratch = useScratch();

  it('100,000 × 768-d records: putMany, migrate to cold, reopen, read back exactly', () => {
    const dir = scratch.storePath();
    let store = scratch.open(dir, { dimensions: DIMS, hotCapacity: 500, warmCapacity: 2_000 });
    const putTimes: Array<[number, number]> = [];
    for (let b = 0; b < N / BATCH; b++) {
      const recs: MemoryInput[] = [];
      for (let i = b * BATCH; i < (b + 1) * BATCH; i++) recs.push(scaleRecord(i));
      const t0 = Date.now();
      expect(store.putMany(recs)).toBe(BATCH);
      putTimes.push([t0, Date.now()]);
      expect(store.counts().total, `total after batch ${b}`).toBe((b + 1) * BATCH);
    }
    store.migrate();
    const before = pickCounts(store.counts());
    expect(before.total).toBe(N);
    expect(before.hot).toBeLessThanOrEqual(500);
    expect(before.warm).toBeLessThanOrEqual(2_000);
    expect(before.cold).toBe(N - before.hot - before.warm);
    store.close();

    store = scratch.open(dir);
    expect(store.dimensions).toBe(DIMS);
    expect(pickCounts(store.counts()), 'counts exact after reopen').toEqual(before);

    // Every id exactly once (no embeddings); remember each record's tier.
    const tierOf = new Map<string, string>();
    let yielded = 0;
    for (const m of store.iterate({ tier: 'all' })) {
      yielded++;
      expect(m.embedding).toBeUndefined();
      if (tierOf.has(m.id)) expect.fail(`${m.id} yielded twice`);
      tierOf.set(m.id, m.tier);
    }
    expect(yielded).toBe(N);
    expect(tierOf.size).toBe(N);
    for (let i = 0; i < N; i++) if (!tierOf.has(idOf(i))) expect.fail(`${idOf(i)} missing`);

    // Every embedding (and the other fields) bit-exact, in batches.
    let checked = 0;
    for (const batch of store.iterate({ tier: 'all', includeEmbeddings: true, batchSize: 1000 }).batches()) {
      const n = batch.ids.length;
      expect(batch.embeddings!.length).toBe(n * DIMS);
      for (let k = 0; k < n; k++) {
        const i = indexOf(batch.ids[k]!);
        const want = scaleRecord(i);
        const row = batch.embeddings!.subarray(k * DIMS, (k + 1) * DIMS);
        const diff = firstBitDifference(row, want.embedding as Float32Array);
        if (diff !== -1) expect.fail(`${batch.ids[k]}: embedding differs at ${diff}`);
        if (batch.contents[k] !== want.content) expect.fail(`${batch.ids[k]}: content differs`);
        if (batch.confidence[k] !== want.confidence || batch.activation[k] !== want.activation) expect.fail(`${batch.ids[k]}: scalars differ`);
        if (batch.createdAt[k] !== want.createdAt) expect.fail(`${batch.ids[k]}: createdAt differs`);
        if (batch.tiers[k] !== tierOf.get(batch.ids[k]!)) expect.fail(`${batch.ids[k]}: tier differs between iterations`);
        checked++;
      }
    }
    expect(checked).toBe(N);

    // A sample of 1,000 through get, every field exact.
    const rng = mulberry32(1234);
    for (let k = 0; k < 1000; k++) {
      const i = Math.floor(rng() * N);
      const rec = scaleRecord(i);
      const [t0, t1] = putTimes[Math.floor(i / BATCH)]!;
      const exp = expectedOf(rec, t0, t1);
      const m = store.get(rec.id, { includeEmbedding: true });
      checkMemory(m, exp, tierOf.get(rec.id) as 'hot' | 'warm' | 'cold', { embedding: true, where: `get(${rec.id})`, skipAccessStats: true });
    }
    expect(pickCounts(store.counts()), 'reads changed no counts').toEqual(before);
  }, 300_000);
});
