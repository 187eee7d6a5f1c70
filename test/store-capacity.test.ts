// Capacities and migration (docs/tiers.md): tiers stay
// within their capacities, no record is lost or duplicated on the way down,
// the lowest-activation records (ties: oldest lastAccessAt) are the ones
// demoted, skipWarm demotes straight to cold, and capacities are per-open
// options (not stored).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Memory, MemoryInput, MemoryStore, Tier } from '../lib/index.js';
import { contentOfBytes, mulberry32, randomEmbedding, sleep, waitPastMs } from './helpers/random.js';
import { checkMemory, expectedOf, iterateAll, pickCounts, TIERS, useScratch, type Expected } from './helpers/store.js';

const DIMS = 8;
const N = 5000;

function capacityRecord(i: number): MemoryInput {
  const rng = mulberry32(0xc0ffee + i);
  return {
    id: `cap-${String(i).padStart(5, '0')}`,
    content: contentOfBytes(rng, 20 + (i % 200), 0.05),
    embedding: randomEmbedding(rng, DIMS, i % 3 === 0 ? 'float32' : i % 3 === 1 ? 'float64' : 'array'),
    confidence: Math.round(rng() * 1000) / 1000,
    activation: rng(),
    createdAt: 1_600_000_000_000 + i * 1000,
    metadata: { i, even: i % 2 === 0 },
  };
}

/** Writes records [from, to) as a mix of put() and putMany() of various batch sizes. */
function writeMixed(store: MemoryStore, from: number, to: number, expected: Map<string, Expected>): void {
  let i = from;
  let step = 0;
  while (i < to) {
    const mode = step++ % 4;
    if (mode === 0) {
      // 137 single puts
      for (const end = Math.min(to, i + 137); i < end; i++) {
        const rec = capacityRecord(i);
        const t0 = Date.now();
        store.put(rec);
        expected.set(rec.id, expectedOf(rec, t0, Date.now()));
      }
    } else {
      // putMany with an array, a generator or a Set
      const size = mode === 1 ? 250 : mode === 2 ? 1500 : 42;
      const recs: MemoryInput[] = [];
      for (const end = Math.min(to, i + size); i < end; i++) recs.push(capacityRecord(i));
      const input: Iterable<MemoryInput> =
        mode === 1 ? recs : mode === 2 ? (function* () { yield* recs; })() : new Set(recs);
      const t0 = Date.now();
      expect(store.putMany(input), 'putMany returns the number of records given').toBe(recs.length);
      const t1 = Date.now();
      for (const rec of recs) expected.set(rec.id, expectedOf(rec, t0, t1));
    }
  }
}

/** id → tier over iterate('all'), asserting each id is yielded exactly once and tiers agree with per-tier iteration and counts(). */
function tierMap(store: MemoryStore): Map<string, Memory> {
  const byId = new Map<string, Memory>();
  const all = iterateAll(store, 'all');
  for (const m of all) {
    expect(byId.has(m.id), `iterate('all') yields ${m.id} once`).toBe(false);
    byId.set(m.id, m);
  }
  const counts = pickCounts(store.counts());
  expect(counts.total, 'counts().total = records yielded').toBe(all.length);
  expect(counts.hot + counts.warm + counts.cold, 'counts add up').toBe(counts.total);
  for (const tier of TIERS) {
    const inTier = iterateAll(store, tier);
    expect(inTier.length, `iterate({tier:'${tier}'}) yields counts().${tier} records`).toBe(counts[tier]);
    for (const m of inTier) {
      expect(m.tier, `iterate({tier:'${tier}'}) labels`).toBe(tier);
      expect(byId.get(m.id)?.tier, `${m.id} is in ${tier} in both iterations`).toBe(tier);
    }
  }
  return byId;
}

function tiersOf(byId: Map<string, Memory>): Record<string, Tier> {
  const out: Record<string, Tier> = {};
  for (const [id, m] of byId) out[id] = m.tier;
  return out;
}

/** a ranks strictly above b for keeping in a tier: higher activation, ties newer lastAccessAt. */
function strictlyAbove(a: Memory, b: Memory): boolean {
  return a.activation > b.activation || (a.activation === b.activation && a.lastAccessAt > b.lastAccessAt);
}

/** No demoted record ranks strictly above a kept one. */
function expectKeptRankAbove(kept: Memory[], demoted: Memory[], what: string): void {
  if (kept.length === 0 || demoted.length === 0) return;
  let worstKept = kept[0]!;
  for (const m of kept) if (strictlyAbove(worstKept, m)) worstKept = m;
  let bestDemoted = demoted[0]!;
  for (const m of demoted) if (strictlyAbove(m, bestDemoted)) bestDemoted = m;
  expect(
    strictlyAbove(bestDemoted, worstKept),
    `${what}: demoted ${bestDemoted.id} (activation ${bestDemoted.activation}, lastAccessAt ${bestDemoted.lastAccessAt}) ` +
      `ranks above kept ${worstKept.id} (activation ${worstKept.activation}, lastAccessAt ${worstKept.lastAccessAt})`,
  ).toBe(false);
}

async function eventually(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) expect.fail(`not within ${timeoutMs} ms: ${what}`);
    await sleep(25);
  }
}

describe('capacities', () => {
  const scratch = useScratch();

  function build(): { dir: string; store: MemoryStore; expected: Map<string, Expected> } {
    const dir = scratch.storePath();
    const store = scratch.open(dir, { dimensions: DIMS, hotCapacity: 100, warmCapacity: 1000 });
    const expected = new Map<string, Expected>();
    writeMixed(store, 0, N, expected);
    return { dir, store, expected };
  }

  it('5,000 records through put and putMany with hotCapacity 100, warmCapacity 1000: every id exactly once, tiers within capacity', async () => {
    const { store, expected } = build();

    // Migration happens by itself, inside the writes or soon after on a background thread.
    await eventually(() => {
      const c = store.counts();
      expect(c.total, 'total stays exact while migration runs').toBe(N);
      return c.hot < N && c.cold > 0;
    }, 'hot and warm overflow are migrated down without an explicit migrate()');

    store.migrate();
    const c = pickCounts(store.counts());
    expect(c.hot, 'hot ≤ hotCapacity').toBeLessThanOrEqual(100);
    expect(c.warm, 'warm ≤ warmCapacity').toBeLessThanOrEqual(1000);
    expect(c.total).toBe(N);
    expect(c.cold, 'the rest is cold').toBe(N - c.hot - c.warm);
    expect(c.cold, 'cold holds at least the overflow').toBeGreaterThanOrEqual(N - 1100);

    const byId = tierMap(store);
    expect([...byId.keys()].sort(), 'exactly the ids written').toEqual([...expected.keys()].sort());

    // Every record is intact wherever it ended up (iterate: no access-stat side effects).
    for (const m of iterateAll(store, 'all', true)) checkMemory(m, expected.get(m.id)!, m.tier, { embedding: true, where: `iterate all (${m.tier})` });

    // Per-id checks on a sample through has/get.
    const rng = mulberry32(99);
    for (let k = 0; k < 200; k++) {
      const id = `cap-${String(Math.floor(rng() * N)).padStart(5, '0')}`;
      expect(store.has(id), `has(${id})`).toBe(true);
      const m = store.get(id, { includeEmbedding: true });
      checkMemory(m, expected.get(id)!, byId.get(id)!.tier, { embedding: true, where: 'get', skipAccessStats: true });
    }
  }, 300_000);

  it('reopen with the same or with default options keeps the same records in the same tiers', () => {
    const { dir, store } = build();
    store.migrate();
    const before = tiersOf(tierMap(store));
    const countsBefore = pickCounts(store.counts());
    expect(Object.keys(before).length).toBe(N);

    store.close();
    const same = scratch.open(dir, { hotCapacity: 100, warmCapacity: 1000 });
    expect(pickCounts(same.counts()), 'counts after reopen with the same options').toEqual(countsBefore);
    expect(tiersOf(tierMap(same)), 'ids and tiers after reopen with the same options').toEqual(before);
    same.migrate();
    expect(pickCounts(same.counts()), 'migrate() with the same capacities changes nothing').toEqual(countsBefore);
    same.close();

    const dflt = scratch.open(dir);
    expect(dflt.dimensions).toBe(DIMS);
    expect(pickCounts(dflt.counts()), 'counts after reopen with default options').toEqual(countsBefore);
    expect(tiersOf(tierMap(dflt)), 'ids and tiers after reopen with default options').toEqual(before);
    dflt.migrate(); // default capacities (10,000 / 1,000,000) are not exceeded: nothing moves, nothing is promoted
    expect(pickCounts(dflt.counts()), 'migrate() under default capacities moves nothing').toEqual(countsBefore);
    expect(tiersOf(tierMap(dflt))).toEqual(before);
  }, 300_000);

  it('lower capacities on reopen: migrate() brings every tier within them, demoting the lowest-activation records', () => {
    const { dir, store } = build();
    store.migrate();
    store.close();

    const s = scratch.open(dir, { hotCapacity: 10, warmCapacity: 200 });
    const before = tierMap(s);
    s.migrate();
    const c = pickCounts(s.counts());
    expect(c.hot, 'hot ≤ new hotCapacity').toBeLessThanOrEqual(10);
    expect(c.warm, 'warm ≤ new warmCapacity').toBeLessThanOrEqual(200);
    expect(c.hot, 'hot still holds records').toBeGreaterThan(0);
    expect(c.warm, 'warm still holds records').toBeGreaterThan(0);
    expect(c.total).toBe(N);
    const after = tierMap(s);
    expect([...after.keys()].sort(), 'the same ids').toEqual([...before.keys()].sort());

    const was = (tier: Tier) => [...before.values()].filter((m) => m.tier === tier);
    const now = (id: string) => after.get(id)!.tier;
    // Migration only demotes.
    for (const m of was('cold')) expect(now(m.id), `${m.id} was cold`).toBe('cold');
    for (const m of was('warm')) expect(now(m.id), `${m.id} was warm`).not.toBe('hot');
    // Hot keeps its highest-ranked records.
    const oldHot = was('hot');
    expectKeptRankAbove(oldHot.filter((m) => now(m.id) === 'hot'), oldHot.filter((m) => now(m.id) !== 'hot'), 'hot');
    // Warm (its old records plus those demoted from hot) keeps its highest-ranked ones.
    const warmCandidates = [...was('warm'), ...oldHot.filter((m) => now(m.id) !== 'hot')];
    expectKeptRankAbove(
      warmCandidates.filter((m) => now(m.id) === 'warm'),
      warmCandidates.filter((m) => now(m.id) === 'cold'),
      'warm',
    );

    s.close();
    const again = scratch.open(dir);
    expect(pickCounts(again.counts()), 'the migration survives reopen').toEqual(c);
    expect(tiersOf(tierMap(again))).toEqual(tiersOf(after));
  }, 300_000);

  it('after migrate() hot holds the highest-activation records, warm the next, cold the lowest', () => {
    const dir = scratch.storePath();
    const s1 = scratch.open(dir, { dimensions: DIMS }); // default capacities: everything stays hot
    const recs: MemoryInput[] = [];
    for (let i = 0; i < 600; i++) recs.push(capacityRecord(10_000 + i));
    s1.putMany(recs.slice(0, 300));
    for (const r of recs.slice(300)) s1.put(r);
    expect(s1.counts().hot, 'under the default hotCapacity nothing migrates').toBe(600);
    s1.close();

    const s = scratch.open(dir, { hotCapacity: 50, warmCapacity: 150 });
    expect(s.counts().hot, 'open itself does not lose records').toBe(600);
    s.migrate();
    const c = pickCounts(s.counts());
    expect(c.hot).toBeLessThanOrEqual(50);
    expect(c.warm).toBeLessThanOrEqual(150);
    expect(c.hot).toBeGreaterThan(0);
    expect(c.warm).toBeGreaterThan(0);
    expect(c.total).toBe(600);
    const hot = iterateAll(s, 'hot');
    const warm = iterateAll(s, 'warm');
    const cold = iterateAll(s, 'cold');
    expectKeptRankAbove(hot, [...warm, ...cold], 'hot over warm and cold');
    expectKeptRankAbove(warm, cold, 'warm over cold');
  }, 120_000);

  it('ties in activation: the records with the oldest lastAccessAt are demoted first', async () => {
    const dir = scratch.storePath();
    const s1 = scratch.open(dir, { dimensions: DIMS });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const rec = capacityRecord(20_000 + i);
      s1.put({ ...rec, activation: 0.5 });
      ids.push(rec.id);
    }
    // Access them in a shuffled order so lastAccessAt order differs from put order.
    const order = [...ids].sort((a, b) => (a.split('').reverse().join('') < b.split('').reverse().join('') ? -1 : 1));
    for (const id of order) {
      await waitPastMs();
      expect(s1.get(id)).toBeDefined();
    }
    s1.close(); // persists the access statistics

    const s = scratch.open(dir, { hotCapacity: 5 });
    s.migrate();
    const hot = iterateAll(s, 'hot').map((m) => m.id).sort();
    expect(hot, 'hot keeps the 5 most recently accessed (hot must be within capacity and not empty)').toEqual(
      order.slice(order.length - hot.length).sort(),
    );
    expect(hot.length).toBeGreaterThan(0);
    expect(hot.length).toBeLessThanOrEqual(5);
    const warm = iterateAll(s, 'warm');
    expect(warm.length, 'the rest went to warm').toBe(20 - hot.length);
  }, 60_000);

  it('skipWarm demotes hot straight to cold, inside writes and in migrate()', async () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS, hotCapacity: 20, skipWarm: true });
    const expected = new Map<string, Expected>();
    for (let b = 0; b < 5; b++) {
      writeMixed(s, 30_000 + b * 100, 30_000 + (b + 1) * 100, expected);
      expect(s.counts().warm, 'skipWarm: warm stays empty').toBe(0);
    }
    await eventually(() => s.counts().cold > 0, 'hot overflow goes to cold without migrate()');
    s.migrate();
    const c = pickCounts(s.counts());
    expect(c.hot).toBeLessThanOrEqual(20);
    expect(c.warm).toBe(0);
    expect(c.cold).toBe(500 - c.hot);
    for (const m of iterateAll(s, 'all', true)) checkMemory(m, expected.get(m.id)!, m.tier, { embedding: true, where: 'skipWarm store' });
    // (No global activation order here: records demoted by earlier writes may
    // outrank later ones still in hot; migration only demotes.)

    // The option is not stored: a reopen without it demotes to warm again.
    s.close();
    const s2 = scratch.open(dir, { hotCapacity: 5 });
    s2.migrate();
    const c2 = pickCounts(s2.counts());
    expect(c2.hot).toBeLessThanOrEqual(5);
    expect(c2.warm, 'without skipWarm the hot overflow goes to warm').toBe(c.hot - c2.hot);
    expect(c2.total).toBe(500);
  }, 120_000);

  it('capacities of 0 empty hot (and warm) on migrate(), keeping every record', () => {
    const dir = scratch.storePath();
    const s1 = scratch.open(dir, { dimensions: DIMS });
    const expected = new Map<string, Expected>();
    writeMixed(s1, 60_000, 60_300, expected);
    s1.close();
    const s = scratch.open(dir, { hotCapacity: 0 });
    s.migrate();
    expect(pickCounts(s.counts())).toEqual({ hot: 0, warm: 300, cold: 0, total: 300 });
    s.close();
    const s2 = scratch.open(dir, { hotCapacity: 0, warmCapacity: 0 });
    s2.migrate();
    expect(pickCounts(s2.counts())).toEqual({ hot: 0, warm: 0, cold: 300, total: 300 });
    for (const m of iterateAll(s2, 'all', true)) checkMemory(m, expected.get(m.id)!, 'cold', { embedding: true, where: 'capacity 0' });
    // A put with hotCapacity 0 is stored (and may be demoted right away), never dropped.
    const t0 = Date.now();
    const extra = capacityRecord(60_999);
    s2.put(extra);
    const t1 = Date.now();
    s2.migrate();
    expect(pickCounts(s2.counts())).toEqual({ hot: 0, warm: 0, cold: 301, total: 301 });
    checkMemory(s2.get(extra.id, { includeEmbedding: true }), expectedOf(extra, t0, t1), 'cold', { embedding: true, where: 'put under capacity 0', skipAccessStats: true });
  });

  it('skipWarm on reopen of a store with everything in hot', () => {
    const dir = scratch.storePath();
    const s1 = scratch.open(dir, { dimensions: DIMS });
    for (let i = 0; i < 300; i++) s1.put(capacityRecord(40_000 + i));
    s1.close();
    const s = scratch.open(dir, { hotCapacity: 50, skipWarm: true });
    s.migrate();
    const c = pickCounts(s.counts());
    expect(c.hot).toBeLessThanOrEqual(50);
    expect(c.hot).toBeGreaterThan(0);
    expect(c.warm).toBe(0);
    expect(c.cold).toBe(300 - c.hot);
    expectKeptRankAbove(iterateAll(s, 'hot'), iterateAll(s, 'cold'), 'hot over cold');
  });
});

describe('putMany semantics', () => {
  const scratch = useScratch();

  it('a repeated id within one batch: the last wins, and the return value is the number of records given', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const a1 = { ...capacityRecord(1), id: 'dup', content: 'first version', confidence: 0.1 };
    const b = capacityRecord(2);
    const a2 = { ...capacityRecord(3), id: 'dup', content: 'second version', confidence: 0.2 };
    const a3 = { ...capacityRecord(4), id: 'dup', content: 'last version — ünïcødé', confidence: 0.9, metadata: { last: true } };
    const t0 = Date.now();
    expect(s.putMany([a1, b, a2, a3]), 'returns the number given, duplicates included').toBe(4);
    const t1 = Date.now();
    expect(pickCounts(s.counts())).toEqual({ hot: 2, warm: 0, cold: 0, total: 2 });
    const all = iterateAll(s, 'all', true);
    expect(all.map((m) => m.id).sort()).toEqual(['dup', b.id].sort());
    checkMemory(all.find((m) => m.id === 'dup'), expectedOf(a3, t0, t1), 'hot', { embedding: true, where: 'last wins' });
    checkMemory(all.find((m) => m.id === b.id), expectedOf(b, t0, t1), 'hot', { embedding: true, where: 'other record' });
  });

  it('last wins also survives close and reopen (the log replays the batch in order)', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS });
    const versions = [0, 1, 2, 3, 4].map((v) => ({ ...capacityRecord(100 + v), id: 'same', content: `version ${v}` }));
    expect(s.putMany(versions)).toBe(5);
    s.close();
    const r = scratch.open(dir);
    expect(pickCounts(r.counts())).toEqual({ hot: 1, warm: 0, cold: 0, total: 1 });
    expect(r.get('same')?.content).toBe('version 4');
  });

  it('putMany of ids that live in warm and cold upserts them into hot, one copy each', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const w = capacityRecord(200);
    const c = capacityRecord(201);
    s.putMany([w, c]);
    expect(s.move(w.id, 'warm')).toBe(true);
    expect(s.move(c.id, 'cold')).toBe(true);
    const w2 = { ...w, content: 'new warm content' };
    const c2 = { ...c, content: 'new cold content' };
    const t0 = Date.now();
    expect(s.putMany([w2, c2, capacityRecord(202)])).toBe(3);
    const t1 = Date.now();
    expect(pickCounts(s.counts())).toEqual({ hot: 3, warm: 0, cold: 0, total: 3 });
    const all = iterateAll(s, 'all', true);
    expect(all.length).toBe(3);
    checkMemory(all.find((m) => m.id === w.id), expectedOf(w2, t0, t1), 'hot', { embedding: true, where: 'upserted from warm' });
    checkMemory(all.find((m) => m.id === c.id), expectedOf(c2, t0, t1), 'hot', { embedding: true, where: 'upserted from cold' });
  });

  it('putMany of an empty iterable returns 0 and changes nothing', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    s.put(capacityRecord(1));
    expect(s.putMany([])).toBe(0);
    expect(s.putMany(new Set<MemoryInput>())).toBe(0);
    expect(s.putMany((function* () {})())).toBe(0);
    expect(pickCounts(s.counts())).toEqual({ hot: 1, warm: 0, cold: 0, total: 1 });
  });
});

describe('disk footprint', () => {
  const scratch = useScratch();

  it('a store with one record in each tier takes a few MiB of disk, not whole 64 MiB chunks', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: 768 });
    for (const tier of TIERS) {
      s.put({ id: tier, content: 'x'.repeat(100), embedding: new Float32Array(768).fill(0.5) });
      s.move(tier, tier);
    }
    expect(pickCounts(s.counts())).toEqual({ hot: 1, warm: 1, cold: 1, total: 3 });
    const allocated = (): number =>
      fs.readdirSync(p).reduce((sum, f) => sum + fs.statSync(path.join(p, f)).blocks * 512, 0);
    expect(allocated(), 'allocated bytes while open').toBeLessThan(16 * 1024 * 1024);
    s.close();
    expect(allocated(), 'allocated bytes after close').toBeLessThan(16 * 1024 * 1024);
  });

  it('a clean close gives back the var space growth preallocated; every record reads back, also after growing again', () => {
    const p = scratch.storePath();
    const record = (i: number): MemoryInput => {
      const rng = mulberry32(0x7a11 + i);
      return { id: `v-${i}`, content: contentOfBytes(rng, 900 + (i % 200), 0.05), embedding: randomEmbedding(rng, DIMS, 'float32'), metadata: { i } };
    };
    const varBytes = (): number =>
      fs.readdirSync(p).filter((f) => f.startsWith('warm-var-')).reduce((sum, f) => sum + fs.statSync(path.join(p, f)).size, 0);
    const checkAll = (store: MemoryStore, n: number): void => {
      for (let i = 0; i < n; i++) {
        const m = store.get(`v-${i}`);
        expect(m?.content === record(i).content && m.metadata.i === i, `v-${i}`).toBe(true);
      }
    };
    let s = scratch.open(p, { dimensions: DIMS, hotCapacity: 10 });
    for (let i = 0; i < 3000; i += 500) s.putMany(Array.from({ length: 500 }, (_, k) => record(i + k)));
    s.migrate();
    expect(s.counts().warm).toBeGreaterThan(2980);
    const open1 = varBytes();
    s.close();
    const closed1 = varBytes();
    // ~3.3 MB of records: growth had preallocated up to 4 MiB past the header.
    expect(closed1, 'var bytes after close').toBeLessThan(open1);
    expect(closed1).toBeLessThan(3_500_000);
    s = scratch.open(p, { hotCapacity: 10 });
    checkAll(s, 3000);
    for (let i = 3000; i < 6000; i += 500) s.putMany(Array.from({ length: 500 }, (_, k) => record(i + k)));
    s.close();
    expect(varBytes()).toBeLessThan(2 * closed1 + 200_000);
    s = scratch.open(p);
    expect(s.counts().total).toBe(6000);
    checkAll(s, 6000);
    s.close();
    // Everything to cold: the var file keeps its header page only.
    s = scratch.open(p, { hotCapacity: 0, warmCapacity: 0 });
    s.migrate();
    expect(pickCounts(s.counts())).toEqual({ hot: 0, warm: 0, cold: 6000, total: 6000 });
    s.close();
    expect(varBytes()).toBeLessThanOrEqual(4096);
    s = scratch.open(p);
    checkAll(s, 6000);
    s.close();
  });
});

describe('list over capacity-managed tiers', () => {
  const scratch = useScratch();

  it('defaults to tier hot and limit 100, caps limit at 1000, and pages each tier completely by offset and by cursor', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS, hotCapacity: 150, warmCapacity: 1200 });
    const expected = new Map<string, Expected>();
    writeMixed(s, 50_000, 53_000, expected);
    s.migrate();
    const c = pickCounts(s.counts());
    expect(c.hot).toBeLessThanOrEqual(150);
    expect(c.cold).toBeGreaterThan(1000);

    const dflt = s.list();
    expect(dflt.memories.every((m) => m.tier === 'hot'), 'list() lists hot').toBe(true);
    expect(dflt.count).toBe(Math.min(100, c.hot));
    expect(dflt.pagination.limit).toBe(100);
    expect(dflt.pagination.offset).toBe(0);
    expect(pickCounts(dflt.tierCounts)).toEqual(c);
    for (const m of dflt.memories) expect(m.embedding, 'no embeddings unless asked').toBeUndefined();

    const beyond = s.list({ tier: 'cold', offset: c.cold + 10, limit: 10 });
    expect(beyond.count, 'an offset past the end gives an empty page').toBe(0);
    expect(beyond.pagination.nextCursor, 'and no nextCursor').toBeUndefined();
    const last = s.list({ tier: 'cold', offset: c.cold - 3, limit: 10 });
    expect(last.count, 'the last, partial page').toBe(3);
    expect(last.pagination.nextCursor, 'nextCursor is absent on the last page').toBeUndefined();

    const capped = s.list({ tier: 'cold', limit: 5000 });
    expect(capped.count, 'limit capped at 1000').toBe(1000);
    expect(capped.pagination.limit).toBe(1000);

    for (const tier of [...TIERS, 'all'] as const) {
      const ids = iterateAll(s, tier).map((m) => m.id);
      // offset paging
      const byOffset: string[] = [];
      for (let offset = 0; ; offset += 333) {
        const page = s.list({ tier, offset, limit: 333 });
        expect(page.pagination.offset).toBe(offset);
        byOffset.push(...page.memories.map((m) => m.id));
        for (const m of page.memories) if (tier !== 'all') expect(m.tier).toBe(tier);
        if (page.count < 333) break;
      }
      expect(byOffset.length, `offset pages of ${tier} cover it`).toBe(ids.length);
      expect(new Set(byOffset).size, `offset pages of ${tier} yield each record once`).toBe(ids.length);
      expect(new Set(byOffset), `offset pages of ${tier}`).toEqual(new Set(ids));
      // cursor paging
      const byCursor: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = cursor === undefined ? s.list({ tier, limit: 250 }) : s.list({ tier, limit: 250, cursor });
        byCursor.push(...page.memories.map((m) => m.id));
        cursor = page.pagination.nextCursor;
        if (cursor === undefined) break;
      }
      expect(byCursor.length, `cursor pages of ${tier} cover it`).toBe(ids.length);
      expect(new Set(byCursor).size, `cursor pages of ${tier} yield each record once`).toBe(ids.length);
      expect(new Set(byCursor), `cursor pages of ${tier}`).toEqual(new Set(ids));
    }
  }, 120_000);
});
