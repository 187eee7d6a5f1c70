// Recall is exact: on 20,000 random records spread over hot, warm and cold,
// recall and recallAsync return exactly the ids a brute-force cosine scan in
// JS returns (scores within 1e-5), for 50 queries per dimension count, with
// the tier and minConfidence filters; and an async recall that runs while the
// JS thread writes returns a valid top k of some state of the store.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, type MemoryStore, type RecallHit, type TierSelector } from '../lib/index.js';
import { mulberry32 } from './helpers/random.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Row {
  id: string;
  embedding: Float32Array;
  confidence: number;
  tier: string;
}

function cosine(q: Float32Array, e: Float32Array): number {
  let dot = 0;
  let qq = 0;
  let ee = 0;
  for (let i = 0; i < q.length; i++) {
    dot += q[i]! * e[i]!;
    qq += q[i]! * q[i]!;
    ee += e[i]! * e[i]!;
  }
  return ee === 0 ? 0 : dot / Math.sqrt(qq * ee);
}

function bruteForce(rows: Row[], q: Float32Array, k: number, tier: TierSelector, minConfidence?: number) {
  const scored = rows
    .filter((r) => (tier === 'all' || r.tier === tier) && (minConfidence === undefined || r.confidence >= minConfidence))
    .map((r) => ({ id: r.id, score: cosine(q, r.embedding) }));
  scored.sort((a, b) => b.score - a.score || (Buffer.compare(Buffer.from(a.id), Buffer.from(b.id))));
  return scored.slice(0, k);
}

function build(dims: number, n: number, seed: number): { store: MemoryStore; rows: Row[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-recall-'));
  dirs.push(dir);
  const rng = mulberry32(seed);
  const store = open(path.join(dir, 'db'), { dimensions: dims, hotCapacity: n / 4, warmCapacity: n / 4 });
  const rows: Row[] = [];
  for (let start = 0; start < n; start += 5000) {
    const batch = [];
    for (let i = start; i < start + 5000; i++) {
      const embedding = new Float32Array(dims);
      for (let j = 0; j < dims; j++) embedding[j] = rng() * 2 - 1;
      const confidence = Math.fround(rng());
      batch.push({ id: `r-${i}`, content: `record ${i}`, embedding, confidence, activation: Math.fround(rng()) });
      rows.push({ id: `r-${i}`, embedding, confidence, tier: '' });
    }
    store.putMany(batch);
  }
  store.migrate();
  const tierOf = new Map<string, string>();
  for (const m of store.iterate()) tierOf.set(m.id, m.tier);
  for (const r of rows) r.tier = tierOf.get(r.id)!;
  return { store, rows };
}

function expectSame(hits: RecallHit[], want: { id: string; score: number }[]): void {
  expect(hits.map((h) => h.id)).toEqual(want.map((w) => w.id));
  hits.forEach((h, i) => expect(Math.abs(h.score - want[i]!.score)).toBeLessThan(1e-5));
  for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
}

describe.each([768, 37])('recall over 20,000 records of %i dimensions', (dims) => {
  const { store, rows } = build(dims, 20000, dims);
  afterAll(() => store.close());

  it('spreads the records over all three tiers', () => {
    const c = store.counts();
    expect(c.total).toBe(20000);
    expect(c.hot).toBeGreaterThan(0);
    expect(c.warm).toBeGreaterThan(0);
    expect(c.cold).toBeGreaterThan(0);
  });

  it('recall and recallAsync equal a brute-force scan for 50 queries, with tier and minConfidence filters', async () => {
    const rng = mulberry32(1000 + dims);
    const tiers: TierSelector[] = ['all', 'hot', 'warm', 'cold'];
    for (let qi = 0; qi < 50; qi++) {
      const q = new Float32Array(dims);
      for (let j = 0; j < dims; j++) q[j] = rng() * 2 - 1;
      const k = [1, 10, 37][qi % 3]!;
      const tier = tiers[qi % 4]!;
      const minConfidence = qi % 5 === 0 ? 0.5 : undefined;
      const want = bruteForce(rows, q, k, tier, minConfidence);
      const options = minConfidence === undefined ? { k, tier } : { k, tier, minConfidence };
      const hits = store.recall(q, options);
      expectSame(hits, want);
      for (const h of hits) {
        if (tier !== 'all') expect(h.tier).toBe(tier);
        if (minConfidence !== undefined) expect(h.memory.confidence).toBeGreaterThanOrEqual(minConfidence);
        expect(h.memory.id).toBe(h.id);
      }
      expectSame(await store.recallAsync(q, options), want);
    }
  });

  it('a k larger than the store returns every record', () => {
    const q = rows[0]!.embedding;
    expect(store.recall(q, { k: 10000, tier: 'hot' })).toHaveLength(store.counts().hot);
    // k has no upper bound short of the uint32 range (docs/api.md `.recall()`).
    expect(store.recall(q, { k: 2 ** 32 - 1 })).toHaveLength(store.counts().total);
    expect(store.recall(q, { k: 100_000, tier: 'cold' })).toHaveLength(store.counts().cold);
    expect(() => store.recall(q, { k: 2 ** 32 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('minConfidence is compared at float32 precision, as confidence is stored', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-recall-'));
    dirs.push(dir);
    const s = open(path.join(dir, 'db'), { dimensions: 2 });
    // 0.7 is stored as 0.699999988; the neighbours are the float32 values either side.
    const below = 0.6999999284744263;
    const above = 0.7000000476837158;
    expect(Math.fround(0.7)).toBeLessThan(0.7);
    s.putMany([
      { id: 'exact', content: '', embedding: [1, 0], confidence: 0.7 },
      { id: 'below', content: '', embedding: [1, 0], confidence: below },
      { id: 'above', content: '', embedding: [1, 0], confidence: above },
    ]);
    for (const tier of ['hot', 'warm', 'cold'] as const) {
      for (const id of ['exact', 'below', 'above']) s.move(id, tier);
      const ids = s.recall([1, 0], { k: 10, minConfidence: 0.7 }).map((h) => h.id);
      expect(ids, `${tier}: a record put with confidence 0.7 passes minConfidence 0.7`).toEqual(['above', 'exact']);
      expect(s.recall([1, 0], { k: 10, minConfidence: above }).map((h) => h.id), tier).toEqual(['above']);
    }
    s.close();
  });
});

describe('recallAsync while the JS thread writes', () => {
  it('returns a valid top k of some state, and the store stays consistent', async () => {
    const dims = 64;
    const { store, rows } = build(dims, 10000, 5);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const rng = mulberry32(77);
    const q = new Float32Array(dims);
    for (let j = 0; j < dims; j++) q[j] = rng() * 2 - 1;
    const pending: Promise<RecallHit[]>[] = [];
    let next = 10000;
    for (let round = 0; round < 20; round++) {
      pending.push(store.recallAsync(q, { k: 25, includeEmbeddings: true }));
      // Meanwhile: puts, deletes and a migration on this thread.
      const batch = [];
      for (let i = 0; i < 200; i++, next++) {
        const embedding = new Float32Array(dims);
        for (let j = 0; j < dims; j++) embedding[j] = rng() * 2 - 1;
        batch.push({ id: `r-${next}`, content: 'later', embedding });
        byId.set(`r-${next}`, { id: `r-${next}`, embedding, confidence: 0.5, tier: '' });
      }
      store.putMany(batch);
      for (let i = 0; i < 50; i++) {
        const id = `r-${round * 50 + i}`;
        expect(store.delete(id)).toBe(true);
        byId.delete(id);
      }
      store.migrate();
    }
    for (const hits of await Promise.all(pending)) {
      expect(hits).toHaveLength(25);
      expect(new Set(hits.map((h) => h.id)).size).toBe(25);
      for (let i = 0; i < hits.length; i++) {
        const h = hits[i]!;
        // Each hit is a real record, scored correctly from its own embedding.
        expect(h.memory.embedding).toBeInstanceOf(Float32Array);
        expect(Math.abs(h.score - cosine(q, h.memory.embedding!))).toBeLessThan(1e-5);
        if (i > 0) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(h.score);
      }
    }
    const counts = store.counts();
    expect(counts.total).toBe(byId.size);
    const seen = new Set<string>();
    for (const m of store.iterate()) {
      expect(seen.has(m.id)).toBe(false);
      seen.add(m.id);
    }
    expect(seen).toEqual(new Set(byId.keys()));
    expectSame(store.recall(q, { k: 25 }), bruteForce([...byId.values()].map((r) => ({ ...r, tier: 'x' })), q, 25, 'all'));
    store.close();
  });
});

describe('scores closer together than float32 can tell apart', () => {
  // Perturbations of one vector: their cosines with it fall short of 1 by
  // 1e-11 .. 1e-6, mostly below float32's resolution near 1 (6e-8), so a
  // float scan ties most of them and would rank them by id; a brute-force
  // scan in double (as a user writes one) ranks them by score.
  const dims = 768;
  const rng = mulberry32(4242);
  const base = new Float32Array(dims);
  for (let j = 0; j < dims; j++) base[j] = rng() * 2 - 1;
  const rows: Row[] = [];
  const order = Array.from({ length: 60 }, (_, i) => i).sort(() => rng() - 0.5); // ids unrelated to scores
  for (let i = 0; i < 60; i++) {
    const embedding = base.slice();
    if (i > 0) {
      const j = Math.floor(rng() * dims);
      embedding[j] = embedding[j]! + (i % 2 === 0 ? 1 : -1) * 10 ** (-4 + (3 * i) / 60);
    }
    rows.push({ id: `near-${String(order[i]).padStart(2, '0')}`, embedding, confidence: 0.5, tier: '' });
  }
  let store: MemoryStore;
  beforeAll(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-recall-'));
    dirs.push(dir);
    store = open(path.join(dir, 'db'), { dimensions: dims, hotCapacity: 20, warmCapacity: 20 });
    store.putMany(rows.map((r) => ({ id: r.id, content: '', embedding: r.embedding })));
    store.migrate();
  });
  afterAll(() => store.close());

  it('rank as a double-precision brute-force scan ranks them, in every tier and across tiers', async () => {
    const c = store.counts();
    for (const n of [c.hot, c.warm, c.cold]) expect(n).toBeGreaterThan(10);
    const distinct = new Set(rows.map((r) => cosine(base, r.embedding)));
    expect(distinct.size, 'the test needs distinct exact scores').toBe(60);
    const floatTies = new Set(rows.map((r) => Math.fround(cosine(base, r.embedding))));
    expect(floatTies.size, 'and most of them equal in float32').toBeLessThan(30);
    for (const tier of ['all', 'hot', 'warm', 'cold'] as const) {
      const tierOf = new Map([...store.iterate()].map((m) => [m.id, m.tier]));
      const inTier = rows.map((r) => ({ ...r, tier: tierOf.get(r.id)! }));
      const want = bruteForce(inTier, base, 60, tier);
      for (const hits of [store.recall(base, { k: 60, tier }), await store.recallAsync(base, { k: 60, tier })]) {
        expect(hits.map((h) => h.id), tier).toEqual(want.map((w) => w.id));
        hits.forEach((h, i) => expect(Math.abs(h.score - want[i]!.score)).toBeLessThan(1e-12));
      }
    }
  });

  it('the query itself scores exactly 1, as the record holding it', () => {
    const hits = store.recall(base, { k: 2 });
    expect(hits[0]!.id).toBe(rows[0]!.id);
    expect(hits[0]!.score).toBe(1);
    expect(hits[1]!.score).toBeLessThan(1);
  });
});

describe('a record queried by its own embedding', () => {
  it('scores exactly 1 in every tier (the score is computed in double)', () => {
    const dims = 768;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-recall-'));
    dirs.push(dir);
    const store = open(path.join(dir, 'db'), { dimensions: dims, hotCapacity: 30, warmCapacity: 30 });
    const rng = mulberry32(99);
    const recs = Array.from({ length: 90 }, (_, i) => {
      const embedding = new Float32Array(dims);
      for (let j = 0; j < dims; j++) embedding[j] = (rng() * 2 - 1) * 10 ** ((i % 7) - 3);
      return { id: `self-${i}`, content: '', embedding };
    });
    store.putMany(recs);
    store.migrate();
    const tiers = new Set<string>();
    for (const r of recs) {
      const [hit] = store.recall(r.embedding, { k: 1 });
      expect(hit!.id).toBe(r.id);
      expect(hit!.score, r.id).toBe(1);
      tiers.add(hit!.tier);
    }
    expect(tiers).toEqual(new Set(['hot', 'warm', 'cold']));
    store.close();
  });

  it('never scores above 1, though the double formula can round to 1.0000000000000002', () => {
    // Found by a search: the cosine of these float32 vectors, computed in
    // double as dot / sqrt(qq * nn), is one ulp above 1; the true value is not.
    const a = [0.7830777168273926, -0.06526068598031998, -0.6108606457710266];
    const b = [5.106514930725098, -0.4255703389644623, -3.983473062515259];
    expect(cosine(Float32Array.from(a), Float32Array.from(b))).toBeGreaterThan(1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-recall-'));
    dirs.push(dir);
    const store = open(path.join(dir, 'db'), { dimensions: 3 });
    store.put({ id: 'b', content: '', embedding: b });
    for (const tier of ['hot', 'warm', 'cold'] as const) {
      store.move('b', tier);
      const [hit] = store.recall(a, { k: 1 });
      expect(hit!.score, tier).toBe(1);
      expect(store.recall(a.map((x) => -x), { k: 1 })[0]!.score, tier).toBe(-1);
    }
    store.close();
  });
});
