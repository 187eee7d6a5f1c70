// Upsert, delete and move in every tier (docs/api.md, docs/tiers.md): a re-put leaves exactly
// one copy, in hot, with the new fields; a delete is final (also across
// reopen, also when older copies of the id existed in lower tiers); move to
// the record's own tier or of a missing id changes nothing.
import { describe, expect, it } from 'vitest';
import type { Memory, MemoryInput, MemoryStore, Tier } from '../lib/index.js';
import { contentOfBytes, mulberry32, randomEmbedding } from './helpers/random.js';
import { checkMemory, expectedOf, iterateAll, listAll, pickCounts, snapshot, TIERS, useScratch, type Expected } from './helpers/store.js';

const DIMS = 4;

function rec(id: string, seed: number, extra: Partial<MemoryInput> = {}): MemoryInput {
  const rng = mulberry32(seed);
  return {
    id,
    content: contentOfBytes(rng, 100 + (seed % 50) * 40, 0.1),
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: Math.fround(rng()),
    activation: Math.fround(rng()),
    createdAt: 1_650_000_000_000 + seed,
    metadata: { seed, nested: { s: `v${seed}` } },
    ...extra,
  };
}

const NEIGHBOURS: Array<{ id: string; tier: Tier }> = [
  { id: 'neighbour-hot', tier: 'hot' },
  { id: 'neighbour-warm', tier: 'warm' },
  { id: 'neighbour-cold', tier: 'cold' },
];

interface Fixture {
  dir: string;
  store: MemoryStore;
  expected: Map<string, Expected>;
  where: Map<string, Tier>;
}

describe.each(TIERS)('record in %s', (tier) => {
  const scratch = useScratch();

  /** Target record 'target' in `tier`, one neighbour in each tier. */
  function setup(): Fixture {
    const dir = scratch.storePath();
    const store = scratch.open(dir, { dimensions: DIMS });
    const expected = new Map<string, Expected>();
    const where = new Map<string, Tier>();
    let seed = 1;
    for (const n of [...NEIGHBOURS, { id: 'target', tier }]) {
      const r = rec(n.id, seed++);
      const t0 = Date.now();
      store.put(r);
      expected.set(r.id, expectedOf(r, t0, Date.now()));
      where.set(n.id, n.tier);
    }
    for (const [id, t] of where) expect(store.move(id, t), `move(${id}, ${t})`).toBe(true);
    expect(pickCounts(store.counts())).toEqual({ hot: tier === 'hot' ? 2 : 1, warm: tier === 'warm' ? 2 : 1, cold: tier === 'cold' ? 2 : 1, total: 4 });
    return { dir, store, expected, where };
  }

  /** Everything in the store is exactly `f.expected` in the tiers of `f.where` (no side effects). */
  function verify(f: Fixture, what: string): void {
    const all = iterateAll(f.store, 'all', true);
    const ids = all.map((m) => m.id);
    expect(ids.length, `${what}: no duplicates`).toBe(new Set(ids).size);
    expect(ids.sort(), `${what}: ids`).toEqual([...f.expected.keys()].sort());
    for (const m of all) checkMemory(m, f.expected.get(m.id)!, f.where.get(m.id)!, { embedding: true, where: what });
    const c = pickCounts(f.store.counts());
    const want = { hot: 0, warm: 0, cold: 0, total: f.expected.size };
    for (const t of f.where.values()) want[t]++;
    expect(c, `${what}: counts`).toEqual(want);
    for (const t of TIERS) {
      const inTier = iterateAll(f.store, t).map((m) => m.id).sort();
      expect(inTier, `${what}: iterate({tier:'${t}'})`).toEqual([...f.where].filter(([, x]) => x === t).map(([id]) => id).sort());
      const listed = listAll(f.store, t, 1000, false).map((m) => m.id).sort();
      expect(listed, `${what}: list({tier:'${t}'})`).toEqual(inTier);
    }
  }

  function reopen(f: Fixture): void {
    f.store.close();
    f.store = scratch.open(f.dir);
  }

  for (const via of ['put', 'putMany'] as const) {
    it(`re-put via ${via} leaves one copy, in hot, with the new fields; also after reopen`, () => {
      const f = setup();
      verify(f, 'before');
      const v2 = rec('target', 1000, {
        content: `new content — ${'ß'.repeat(300)} 🚀`,
        metadata: { version: 2, list: [1, 2, 3] },
        confidence: 0.75,
        activation: 0.125,
        createdAt: 1_234_567_890_123,
      });
      const t0 = Date.now();
      if (via === 'put') f.store.put(v2);
      else expect(f.store.putMany([rec('neighbour-extra', 77), v2])).toBe(2);
      const t1 = Date.now();
      f.expected.set('target', expectedOf(v2, t0, t1));
      f.where.set('target', 'hot');
      if (via === 'putMany') {
        f.expected.set('neighbour-extra', expectedOf(rec('neighbour-extra', 77), t0, t1));
        f.where.set('neighbour-extra', 'hot');
      }
      verify(f, 'after re-put');
      expect(f.store.get('target')?.content).toBe(v2.content);
      expect(f.store.has('target')).toBe(true);
      // A second and a third re-put still leave one copy.
      for (const k of [2, 3]) {
        const v = rec('target', 1000 + k, { content: `version ${k}`, createdAt: 42 + k });
        const s0 = Date.now();
        f.store.put(v);
        f.expected.set('target', expectedOf(v, s0, Date.now()));
      }
      verify(f, 'after three re-puts');
      reopen(f);
      verify(f, 'after re-put and reopen');
      f.store.migrate(); // default capacities: nothing to do, and no old copy may reappear
      verify(f, 'after re-put, reopen and migrate()');
    });
  }

  it('re-put then delete: no older copy of the id ever comes back (also after compact and reopen)', () => {
    const f = setup();
    f.store.put(rec('target', 2000, { content: 'the new version' }));
    expect(f.store.delete('target')).toBe(true);
    f.expected.delete('target');
    f.where.delete('target');
    verify(f, 'after re-put + delete');
    expect(f.store.get('target')).toBeUndefined();
    reopen(f);
    verify(f, 'after re-put + delete + reopen');
    expect(f.store.get('target')).toBeUndefined();
    expect(f.store.has('target')).toBe(false);
    f.store.compact();
    reopen(f);
    verify(f, 'after compact + reopen');
    expect(f.store.get('target')).toBeUndefined();
  });

  it('re-put, move back down, re-put again: still one copy, and reopen keeps the newest', () => {
    const f = setup();
    const v2 = rec('target', 3000, { content: 'second' });
    f.store.put(v2);
    expect(f.store.move('target', tier)).toBe(true);
    const v3 = rec('target', 3001, { content: 'third' });
    const t0 = Date.now();
    f.store.put(v3);
    f.expected.set('target', expectedOf(v3, t0, Date.now()));
    f.where.set('target', 'hot');
    verify(f, 'after put/move/put');
    reopen(f);
    verify(f, 'after put/move/put + reopen');
  });

  it('delete returns true then false; the record is gone from get, has, iterate, list, recall and counts, also after reopen', () => {
    const f = setup();
    verify(f, 'before');
    expect(f.store.delete('target'), 'first delete').toBe(true);
    expect(f.store.delete('target'), 'second delete').toBe(false);
    f.expected.delete('target');
    f.where.delete('target');
    expect(f.store.get('target')).toBeUndefined();
    expect(f.store.get('target', { includeEmbedding: true })).toBeUndefined();
    expect(f.store.has('target')).toBe(false);
    const hits = f.store.recall(new Float32Array(DIMS).fill(1), { k: 10 });
    expect(hits.map((h) => h.id)).not.toContain('target');
    expect(hits.length, 'recall sees the 3 remaining records').toBe(3);
    verify(f, 'after delete');
    reopen(f);
    verify(f, 'after delete + reopen');
    expect(f.store.has('target')).toBe(false);
    expect(f.store.delete('target'), 'delete after reopen').toBe(false);
    expect(f.store.move('target', 'hot'), 'move of the deleted id').toBe(false);
  });

  it('delete, compact, reopen: gone, and every other record is intact', () => {
    const f = setup();
    // More records in the same tier so compaction has something to move.
    for (let i = 0; i < 10; i++) {
      const r = rec(`same-tier-${i}`, 500 + i);
      const t0 = Date.now();
      f.store.put(r);
      f.expected.set(r.id, expectedOf(r, t0, Date.now()));
      f.where.set(r.id, tier);
      expect(f.store.move(r.id, tier)).toBe(true);
    }
    for (const id of ['target', 'same-tier-0', 'same-tier-3', 'same-tier-9']) {
      expect(f.store.delete(id)).toBe(true);
      f.expected.delete(id);
      f.where.delete(id);
    }
    verify(f, 'after deletes');
    f.store.compact();
    verify(f, 'after compact');
    reopen(f);
    verify(f, 'after compact + reopen');
  });

  it('delete then put of the same id gives a fresh record in hot', () => {
    const f = setup();
    expect(f.store.delete('target')).toBe(true);
    const fresh = rec('target', 4000, { content: 'reborn', metadata: { reborn: true } });
    const t0 = Date.now();
    f.store.put(fresh);
    f.expected.set('target', expectedOf(fresh, t0, Date.now()));
    f.where.set('target', 'hot');
    verify(f, 'after delete + put');
    reopen(f);
    verify(f, 'after delete + put + reopen');
  });

  it('move to the tier the record is already in returns true and changes nothing', () => {
    const f = setup();
    verify(f, 'before'); // pins every field
    const before = snapshot(f.store);
    expect(f.store.move('target', tier)).toBe(true);
    expect(snapshot(f.store), 'store unchanged').toEqual(before);
    verify(f, 'after move to the same tier');
    reopen(f);
    expect(snapshot(f.store), 'store unchanged after reopen').toEqual(before);
  });

  it('move of a missing id returns false and changes nothing', () => {
    const f = setup();
    const before = snapshot(f.store);
    for (const t of TIERS) {
      expect(f.store.move('no-such-id', t), `move(missing, ${t})`).toBe(false);
      expect(f.store.move('targe', t), 'a prefix of an existing id is not that id').toBe(false);
      expect(f.store.move('target\u0000', t), 'an existing id plus NUL is not that id').toBe(false);
    }
    expect(f.store.delete('no-such-id')).toBe(false);
    expect(f.store.has('no-such-id')).toBe(false);
    expect(f.store.get('no-such-id')).toBeUndefined();
    expect(snapshot(f.store), 'store unchanged').toEqual(before);
  });

  it('move out of this tier and back preserves every field', () => {
    const f = setup();
    verify(f, 'before');
    for (const t of [...TIERS, tier]) {
      expect(f.store.move('target', t)).toBe(true);
      f.where.set('target', t);
      verify(f, `after move to ${t}`);
    }
  });
});

describe('upsert and delete at volume', () => {
  const scratch = useScratch();

  it('interleaved re-puts and deletes across tiers keep exactly one copy per live id, also after reopen', () => {
    const dir = scratch.storePath();
    let store = scratch.open(dir, { dimensions: DIMS, hotCapacity: 20, warmCapacity: 40 });
    const rng = mulberry32(4242);
    const live = new Map<string, string>(); // id -> content
    for (let step = 0; step < 1500; step++) {
      const id = `k${Math.floor(rng() * 150)}`;
      const r = rng();
      if (r < 0.6) {
        const content = `${id} v${step} ${'é'.repeat(step % 13)}`;
        store.put({ id, content, embedding: randomEmbedding(rng, DIMS, 'array'), activation: rng() });
        live.set(id, content);
      } else if (r < 0.8) {
        expect(store.delete(id), `delete(${id}) at step ${step}`).toBe(live.has(id));
        live.delete(id);
      } else {
        const t = TIERS[Math.floor(rng() * 3)]!;
        expect(store.move(id, t), `move(${id}) at step ${step}`).toBe(live.has(id));
      }
    }
    const check = (what: string) => {
      const all = iterateAll(store, 'all');
      const ids = all.map((m: Memory) => m.id);
      expect(ids.length, `${what}: one copy per id`).toBe(new Set(ids).size);
      expect(new Set(ids), `${what}: the live ids`).toEqual(new Set(live.keys()));
      for (const m of all) expect(m.content, `${what}: content of ${m.id}`).toBe(live.get(m.id));
      expect(store.counts().total).toBe(live.size);
    };
    check('before migrate');
    store.migrate();
    check('after migrate');
    store.close();
    store = scratch.open(dir);
    check('after reopen');
    store.compact();
    check('after compact');
  }, 120_000);
});
