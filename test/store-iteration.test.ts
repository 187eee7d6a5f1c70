// Iteration under change (docs/api.md `.iterate()`): a record that exists
// unchanged for the whole life of an iterator is yielded exactly once,
// whatever puts, deletes, moves and migrations happen meanwhile (here: from
// the loop body). In 'all' it is labelled with the tier it was read from; in
// a single tier, records that stay in it are yielded exactly once. Within a
// tier the order is stable.
import { describe, expect, it } from 'vitest';
import type { MemoryInput, MemoryStore, Tier, TierSelector } from '../lib/index.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { iterateAll, TIERS, useScratch } from './helpers/store.js';

const DIMS = 4;

function stable(i: number): MemoryInput {
  const rng = mulberry32(0x57ab1e + i);
  return {
    id: `s-${String(i).padStart(4, '0')}`,
    content: `stable ${i} ${'ü'.repeat(i % 9)}`,
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    activation: rng(),
    createdAt: 1_000_000 + i,
    metadata: { i },
  };
}

function volatile(i: number, version: number, rng: () => number): MemoryInput {
  return {
    id: `v-${i}`,
    content: `volatile ${i} version ${version}`,
    embedding: randomEmbedding(rng, DIMS, 'array'),
    activation: rng(),
  };
}

type Mode = 'sync' | 'async' | 'batches';

/** Iterates `tier`, calling `churn` every few records; returns the ids and tiers yielded. */
async function iterateWhileChurning(
  store: MemoryStore,
  tier: TierSelector,
  mode: Mode,
  churn: (step: number) => void,
): Promise<Array<{ id: string; tier: Tier; content: string }>> {
  const seen: Array<{ id: string; tier: Tier; content: string }> = [];
  let step = 0;
  const onRecord = (id: string, t: Tier, content: string) => {
    seen.push({ id, tier: t, content });
    if (++step % 3 === 0) churn(step);
  };
  const it = store.iterate({ tier, batchSize: 7 });
  if (mode === 'sync') {
    for (const m of it) onRecord(m.id, m.tier, m.content);
  } else if (mode === 'async') {
    for await (const m of it) onRecord(m.id, m.tier, m.content);
  } else {
    for (const b of it.batches()) for (let k = 0; k < b.ids.length; k++) onRecord(b.ids[k]!, b.tiers[k]!, b.contents[k]!);
  }
  return seen;
}

describe.each(['sync', 'async', 'batches'] as const)('iteration (%s) while the store changes', (mode) => {
  const scratch = useScratch();

  function setup(skipWarm = false) {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS, hotCapacity: 40, warmCapacity: 120, skipWarm });
    const STABLE = 400;
    for (let i = 0; i < STABLE; i += 50) store.putMany(Array.from({ length: 50 }, (_, k) => stable(i + k)));
    const rng = mulberry32(77);
    for (let i = 0; i < 100; i++) store.put(volatile(i, 0, rng));
    store.migrate();
    return { store, STABLE, rng };
  }

  for (const skipWarm of [false, true]) {
    it(`'all' yields every unchanged record exactly once, labelled with a real tier, through puts, deletes, moves of other records, migrate() and compact()${skipWarm ? ' (skipWarm)' : ''}`, async () => {
      const { store, STABLE, rng } = setup(skipWarm);
      let version = 1;
      let nextNew = 1000;
      const seen = await iterateWhileChurning(store, 'all', mode, (step) => {
        for (let k = 0; k < 3; k++) {
          const v = Math.floor(rng() * 100);
          const r = rng();
          if (r < 0.35) store.put(volatile(v, version++, rng)); // re-put (upsert into hot, triggers migration)
          else if (r < 0.5) store.delete(`v-${v}`);
          else if (r < 0.7) store.move(`v-${v}`, TIERS[Math.floor(rng() * 3)]!);
          else if (r < 0.9) store.putMany([volatile(nextNew++, 0, rng), volatile(nextNew++, 0, rng), volatile(v, version++, rng)]);
          else store.put(volatile(nextNew++, 0, rng));
        }
        if (step % 30 === 0) store.migrate();
        if (step % 90 === 0) store.compact();
      });
      const counts = new Map<string, number>();
      for (const s of seen) {
        expect(TIERS, `${s.id} labelled with a tier`).toContain(s.tier);
        if (s.id.startsWith('s-')) {
          counts.set(s.id, (counts.get(s.id) ?? 0) + 1);
          expect(s.content, `${s.id} content`).toBe(stable(Number(s.id.slice(2))).content);
        }
      }
      const wrong = [...Array(STABLE).keys()].map((i) => stable(i).id).filter((id) => counts.get(id) !== 1);
      expect(wrong.map((id) => `${id}×${counts.get(id) ?? 0}`), 'stable records not yielded exactly once').toEqual([]);
    }, 120_000);
  }

  it("'all' yields each unchanged record once even when those very records are moved up and down meanwhile", async () => {
    const { store, STABLE, rng } = setup();
    const seen = await iterateWhileChurning(store, 'all', mode, () => {
      for (let k = 0; k < 4; k++) {
        const id = stable(Math.floor(rng() * STABLE)).id;
        store.move(id, TIERS[Math.floor(rng() * 3)]!);
      }
      store.migrate();
    });
    const counts = new Map<string, number>();
    for (const s of seen) counts.set(s.id, (counts.get(s.id) ?? 0) + 1);
    const wrong = [...Array(STABLE).keys()].map((i) => stable(i).id).filter((id) => counts.get(id) !== 1);
    expect(wrong.map((id) => `${id}×${counts.get(id) ?? 0}`), 'moved-but-unchanged records not yielded exactly once').toEqual([]);
    for (const [id, n] of counts) expect(n, `${id} yielded at most once`).toBe(1);
  }, 120_000);

  it.each(TIERS)('a single tier (%s) yields every record that stays in it exactly once while others come and go', async (tier) => {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const rng = mulberry32(5);
    // Residents stay in `tier` throughout; visitors move in and out of it.
    const residents: string[] = [];
    for (let i = 0; i < 200; i++) {
      const r = stable(i);
      store.put(r);
      store.move(r.id, tier);
      residents.push(r.id);
    }
    for (let i = 0; i < 100; i++) {
      store.put(volatile(i, 0, rng));
      store.move(`v-${i}`, TIERS[i % 3]!);
    }
    const seen = await iterateWhileChurning(store, tier, mode, () => {
      for (let k = 0; k < 3; k++) {
        const v = Math.floor(rng() * 100);
        if (!store.move(`v-${v}`, TIERS[Math.floor(rng() * 3)]!)) store.put(volatile(v, 1, rng));
        if (rng() < 0.1) store.delete(`v-${Math.floor(rng() * 100)}`);
      }
    });
    for (const s of seen) expect(s.tier, `iterate({tier:'${tier}'}) labels`).toBe(tier);
    const counts = new Map<string, number>();
    for (const s of seen) counts.set(s.id, (counts.get(s.id) ?? 0) + 1);
    const wrong = residents.filter((id) => counts.get(id) !== 1);
    expect(wrong.map((id) => `${id}×${counts.get(id) ?? 0}`), 'residents not yielded exactly once').toEqual([]);
    expect(iterateAll(store, tier).filter((m) => m.id.startsWith('s-')).length).toBe(200);
  }, 120_000);
});

describe('iteration order and lifecycle', () => {
  const scratch = useScratch();

  it('within a tier the order is stable across passes, handles and reopen', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS, hotCapacity: 30, warmCapacity: 60 });
    for (let i = 0; i < 200; i++) s.put(stable(i));
    s.migrate();
    const order = (st: MemoryStore) => Object.fromEntries(TIERS.map((t) => [t, iterateAll(st, t).map((m) => m.id)]));
    const first = order(s);
    expect(order(s), 'a second pass').toEqual(first);
    const allIds = iterateAll(s, 'all').map((m) => m.id);
    expect(allIds, "'all' = hot, then warm, then cold, each in its own order").toEqual([...first.hot!, ...first.warm!, ...first.cold!]);
    const it = s.iterate({ tier: 'cold' });
    expect([...it].map((m) => m.id), 'an iterable can be iterated again').toEqual(first.cold);
    expect([...it].map((m) => m.id), 'an iterable can be iterated again').toEqual(first.cold);
    s.close();
    expect(order(scratch.open(dir)), 'after reopen').toEqual(first);
  });

  it('breaking out of a loop and abandoning iterators leaves the store fully usable (writes, compact, close, reopen)', async () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS });
    for (let i = 0; i < 100; i++) s.put(stable(i));
    for (let i = 0; i < 30; i++) s.move(stable(i).id, 'cold');
    for (let i = 30; i < 60; i++) s.move(stable(i).id, 'warm');
    for (let round = 0; round < 20; round++) {
      for (const m of s.iterate({ batchSize: 3 })) if (m.id === stable(round * 5).id) break;
      for await (const m of s.iterate({ batchSize: 2, includeEmbeddings: true })) if (m.tier === 'warm') break;
      const dangling = s.iterate({ tier: 'cold', batchSize: 1 })[Symbol.iterator]();
      dangling.next(); // never finished
    }
    s.put(stable(500));
    expect(s.delete(stable(0).id)).toBe(true);
    s.compact();
    s.migrate();
    expect(s.counts().total).toBe(100);
    s.close();
    expect(scratch.open(dir).counts().total).toBe(100);
  });
});
