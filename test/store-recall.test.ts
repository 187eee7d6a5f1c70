// Recall (docs/api.md `.recall()`): every tier scored with the same cosine similarity on
// the full-precision embedding, the global top k best first, ties by id in
// UTF-8 byte order, exact (the same hits as a brute-force scan); recallAsync
// gives the same. The replaced system scored tiers on incomparable scales:
// here identical embeddings placed in different tiers must score identically.
import { describe, expect, it } from 'vitest';
import { open, TierStoreError } from '../lib/index.js';
import type { MemoryInput, MemoryStore, RecallHit, Tier, TierSelector } from '../lib/index.js';
import { describeChild, runChild } from './helpers/child.js';
import { mulberry32, randomEmbedding, toFloat32 } from './helpers/random.js';
import { byUtf8, cosine } from './helpers/recall.js';
import { expectTierStoreError, TIERS, useScratch } from './helpers/store.js';

const DIMS = 13;

interface Placed {
  id: string;
  embedding: Float32Array;
  confidence: number;
  tier: Tier;
}

/** Brute force: [id, score] best first, ties by UTF-8 id. */
function bruteForce(records: Placed[], query: Float32Array, k: number, filter: (r: Placed) => boolean = () => true): Array<[string, number]> {
  return records
    .filter(filter)
    .map((r): [string, number] => [r.id, cosine(r.embedding, query)])
    .sort((a, b) => b[1] - a[1] || byUtf8(a[0], b[0]))
    .slice(0, k);
}

/**
 * The hits equal the brute-force answer: same length; at every rank the hit's
 * exact score equals the expected score there (so near-equal scores may swap
 * only within float32 rounding), and each id appears once.
 */
function expectSameAsBruteForce(hits: RecallHit[], want: Array<[string, number]>, records: Map<string, Placed>, query: Float32Array, what: string): void {
  expect(hits.length, `${what}: number of hits`).toBe(want.length);
  expect(new Set(hits.map((h) => h.id)).size, `${what}: each id once`).toBe(hits.length);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    const rec = records.get(h.id);
    expect(rec, `${what}: hit ${h.id} is a live record`).toBeDefined();
    const exact = cosine(rec!.embedding, query);
    expect(Math.abs(exact - want[i]![1]), `${what}: rank ${i}: ${h.id} (score ${exact}) vs expected ${want[i]![0]} (score ${want[i]![1]})`).toBeLessThan(1e-5);
    expect(Math.abs(h.score - exact), `${what}: reported score of ${h.id}`).toBeLessThan(1e-5);
    expect(h.tier, `${what}: tier of ${h.id}`).toBe(rec!.tier);
    expect(h.memory.tier).toBe(rec!.tier);
    expect(h.memory.id).toBe(h.id);
    if (i > 0) expect(h.score <= hits[i - 1]!.score, `${what}: best first`).toBe(true);
  }
}

describe('recall', () => {
  const scratch = useScratch();

  function build(): { store: MemoryStore; placed: Map<string, Placed>; tie: Float32Array } {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const rng = mulberry32(2024);
    const placed = new Map<string, Placed>();
    const add = (rec: MemoryInput, tier: Tier) => {
      store.put(rec);
      expect(store.move(rec.id, tier)).toBe(true);
      placed.set(rec.id, { id: rec.id, embedding: toFloat32(rec.embedding), confidence: Math.fround(rec.confidence!), tier });
    };
    for (let i = 0; i < 300; i++) {
      add({ id: `r-${i}`, content: `r ${i}`, embedding: randomEmbedding(rng, DIMS, i % 2 ? 'float32' : 'float64'), confidence: 0.01 + 0.98 * rng() }, TIERS[i % 3]!);
    }
    // Identical directions in every tier: exact ties, broken by UTF-8 byte order of the id.
    const tie = randomEmbedding(rng, DIMS, 'float32');
    const doubled = tie.map((x) => x * 2); // same direction, scaled exactly
    const tieIds = ['tie-b', 'tie-a', 'tie-\uffff', 'tie-🚀', 'tie-é', 'tie-z', 'tie-A', 'tie-😀'];
    tieIds.forEach((id, j) => add({ id, content: id, embedding: j % 2 ? tie : doubled, confidence: 0.2 + j / 20 }, TIERS[j % 3]!));
    add({ id: 'anti', content: 'opposite', embedding: tie.map((x) => -x), confidence: 0.9 }, 'cold');
    add({ id: 'zero', content: 'all-zero vector', embedding: new Float32Array(DIMS), confidence: 0.9 }, 'warm');
    return { store, placed, tie };
  }

  it('matches a brute-force scan over all tiers, for several queries and k', async () => {
    const { store, placed } = build();
    const rng = mulberry32(99);
    const all = [...placed.values()];
    for (let q = 0; q < 10; q++) {
      const query = randomEmbedding(rng, DIMS, 'float32');
      for (const k of [1, 5, 37, all.length, all.length + 50]) {
        const want = bruteForce(all, query, k);
        expectSameAsBruteForce(store.recall(query, { k }), want, placed, query, `query ${q} k ${k}`);
        expectSameAsBruteForce(await store.recallAsync(query, { k }), want, placed, query, `recallAsync query ${q} k ${k}`);
      }
    }
  });

  it('query types: a Float32Array and an array of numbers give the same hits', () => {
    const { store } = build();
    const q = randomEmbedding(mulberry32(5), DIMS, 'array'); // doubles, rounded to float32 by the store
    const a = store.recall(q, { k: 20 }).map((h) => h.id);
    expect(store.recall(toFloat32(q), { k: 20 }).map((h) => h.id)).toEqual(a);
    expect(store.recall(Array.from(toFloat32(q)), { k: 20 }).map((h) => h.id)).toEqual(a);
  });

  it('identical directions in different tiers score identically; ties go by ascending UTF-8 id', async () => {
    const { store, placed, tie } = build();
    const hits = store.recall(tie, { k: 8 });
    const ties = [...placed.values()].filter((p) => p.id.startsWith('tie-')).map((p) => p.id).sort(byUtf8);
    expect(hits.map((h) => h.id), 'the tied records, in UTF-8 byte order of their ids').toEqual(ties);
    for (const h of hits) expect(h.score, `${h.id} (${h.tier}) scores exactly like the others`).toBe(hits[0]!.score);
    expect(new Set(hits.map((h) => h.tier)).size, 'the ties span all three tiers').toBe(3);
    expect(Math.abs(hits[0]!.score - 1)).toBeLessThan(1e-5);
    expect((await store.recallAsync(tie, { k: 8 })).map((h) => h.id)).toEqual(ties);
    const worst = store.recall(tie, { k: placed.size });
    expect(worst[worst.length - 1]!.id, 'the opposite vector is last').toBe('anti');
    expect(Math.abs(worst[worst.length - 1]!.score + 1)).toBeLessThan(1e-5);
    const zero = worst.find((h) => h.id === 'zero');
    expect(zero !== undefined && zero.score === 0, 'an all-zero embedding scores 0').toBe(true);
  });

  it('an all-zero query (also one that rounds to zero in float32) is INVALID_ARGUMENT naming the query, sync and async', async () => {
    const { store } = build();
    const underflow = new Float64Array(DIMS).fill(1e-50); // all 0 as float32
    underflow[1] = -1e-60;
    let refused = 0;
    for (const query of [new Float32Array(DIMS), new Array<number>(DIMS).fill(0), underflow]) {
      const error = expectTierStoreError(() => store.recall(query, { k: 3 }), 'INVALID_ARGUMENT', 'recall');
      expect(error.field).toBe('query');
      expect(error.message).toMatch(/all zeros/);
      const rejected = await store.recallAsync(query).then(() => undefined, (e: unknown) => e);
      expect(rejected).toBeInstanceOf(TierStoreError);
      expect((rejected as TierStoreError).code).toBe('INVALID_ARGUMENT');
      expect((rejected as TierStoreError).field).toBe('query');
      refused++;
    }
    expect(refused).toBe(3);
    // One value that survives float32 rounding is a direction.
    const tiny = new Float32Array(DIMS);
    tiny[4] = 1e-40; // a float32 subnormal, not zero
    expect(store.recall(tiny, { k: 3 })).toHaveLength(3);
  });

  it.each(['hot', 'warm', 'cold', 'all'] as TierSelector[])('tier %s and minConfidence filter the candidates', (tier) => {
    const { store, placed } = build();
    const query = randomEmbedding(mulberry32(11), DIMS, 'float32');
    const all = [...placed.values()];
    const inTier = (p: Placed) => tier === 'all' || p.tier === tier;
    expectSameAsBruteForce(store.recall(query, { k: 25, tier }), bruteForce(all, query, 25, inTier), placed, query, `tier ${tier}`);
    const hits = store.recall(query, { k: 25, tier, minConfidence: 0.6 });
    for (const h of hits) expect(h.memory.confidence, 'minConfidence respected').toBeGreaterThanOrEqual(0.6);
    expectSameAsBruteForce(hits, bruteForce(all, query, 25, (p) => inTier(p) && p.confidence >= 0.6), placed, query, `tier ${tier}, minConfidence 0.6`);
  });

  it('hits carry the memory, with its embedding only when asked; recall counts no access', () => {
    const { store } = build();
    const q = randomEmbedding(mulberry32(3), DIMS, 'float32');
    const before = store.get('r-7')!.accessCount;
    const plain = store.recall(q, { k: 300 });
    for (const h of plain) expect(h.memory.embedding).toBeUndefined();
    const full = store.recall(q, { k: 300, includeEmbeddings: true });
    for (const h of full) expect(h.memory.embedding).toBeInstanceOf(Float32Array);
    expect(store.get('r-7')!.accessCount, 'recall does not count as an access').toBe(before + 1);
  });

  it('deleted and overwritten records: only the live version is ever scored', () => {
    const { store, placed, tie } = build();
    // Overwrite tie records (in warm and cold) with an unrelated direction, delete others.
    const other = randomEmbedding(mulberry32(77), DIMS, 'float32');
    for (const id of ['tie-a', 'tie-\uffff']) {
      store.put({ id, content: 'overwritten', embedding: other, confidence: 0.5 });
      placed.set(id, { id, embedding: toFloat32(other), confidence: 0.5, tier: 'hot' });
    }
    for (const id of ['tie-b', 'tie-🚀']) {
      expect(store.delete(id)).toBe(true);
      placed.delete(id);
    }
    const hits = store.recall(tie, { k: 6 });
    expectSameAsBruteForce(hits, bruteForce([...placed.values()], tie, 6), placed, tie, 'after overwrite and delete');
    expect(hits.map((h) => h.id)).not.toContain('tie-a');
    expect(hits.map((h) => h.id)).not.toContain('tie-b');
    const stale = store.recall(other, { k: 2 });
    expect(stale.map((h) => h.id).sort(byUtf8)).toEqual(['tie-a', 'tie-\uffff'].sort(byUtf8));
    for (const h of stale) expect(h.memory.content).toBe('overwritten');
  });

  it('recallAsync called before close() resolves with its hits, every time; the lock is free once it settles', async () => {
    // Whether it resolves must not depend on whether the thread pool has
    // started it when close() comes: it never rejects with STORE_CLOSED.
    const { store: first, placed, tie } = build();
    const p = first.path;
    first.close();
    const want = bruteForce([...placed.values()], tie, 5).map(([id]) => id);
    for (let round = 0; round < 30; round++) {
      const s = open(p);
      const pending = [s.recallAsync(tie, { k: 5 }), s.recallAsync(tie, { k: 5, tier: 'cold' })];
      s.close();
      expect(() => s.counts(), 'the handle is closed at once').toThrow(TierStoreError);
      await expect(s.recallAsync(tie, { k: 5 })).rejects.toMatchObject({ code: 'STORE_CLOSED' });
      const [all, cold] = await Promise.all(pending);
      expect(all!.map((h) => h.id), `round ${round}`).toEqual(want);
      expect(cold!.every((h) => h.tier === 'cold')).toBe(true);
    }
    // Released: another process can take the store for writing.
    const r = runChild(
      `try { const s = ts.open(args.p); s.close(); emit('RESULT', { ok: true }); } catch (e) { emit('RESULT', { ok: false, code: e.code }); }`,
      { p },
    );
    expect(r.result, describeChild(r)).toEqual({ ok: true });
  });

  it('the same answers after close and reopen', () => {
    const { store, placed } = build();
    const dir = store.path;
    const q = randomEmbedding(mulberry32(8), DIMS, 'float32');
    const before = store.recall(q, { k: 50 }).map((h) => [h.id, h.score, h.tier]);
    store.close();
    const again = scratch.open(dir);
    expect(again.recall(q, { k: 50 }).map((h) => [h.id, h.score, h.tier])).toEqual(before);
    expectSameAsBruteForce(again.recall(q, { k: 50 }), bruteForce([...placed.values()], q, 50), placed, q, 'after reopen');
  });
});
