// Filters (MemoryFilter on recall, recallAsync, list, iterate and batches):
// all given conditions hold; a filtered recall is the top k among the
// matching records only, exactly as a brute-force scan of those records; a
// filtered listing or iteration yields exactly the matching records, paging
// by offset and by cursor; a cursor keeps its filter; a bad filter is
// INVALID_ARGUMENT naming its path, checked before anything runs. The warm
// filter entries a clean close saves (warm.filter) change speed only: a
// store whose file was removed, damaged or left by another close answers
// exactly the same.
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { TierStoreError } from '../lib/index.js';
import type { Memory, MemoryFilter, MemoryInput, MemoryStore, Tier, TierSelector } from '../lib/index.js';
import { bruteForce, expectHits, matches, type Row } from './helpers/filter-reference.js';
import { mulberry32, randomEmbedding, toFloat32 } from './helpers/random.js';
import { expectTierStoreError, TIERS, useScratch } from './helpers/store.js';

const DIMS = 8;
const N = 1200;
const REPO_ROOT = path.resolve(__dirname, '..');

const USERS = ['ann', 'bob', 'cy', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jo'];

function makeRows(seed: number): MemoryInput[] {
  const rng = mulberry32(seed);
  const out: MemoryInput[] = [];
  for (let i = 0; i < N; i++) {
    const metadata: Record<string, unknown> = { user: USERS[Math.floor(rng() * USERS.length)], turn: i % 100 };
    if (rng() < 0.5) metadata.tags = ['t' + Math.floor(rng() * 20), 't' + Math.floor(rng() * 20)];
    else metadata.tags = 't' + Math.floor(rng() * 20);
    if (rng() < 0.3) metadata.flag = rng() < 0.5;
    if (rng() < 0.1) metadata.maybe = null;
    if (rng() < 0.1) metadata.nested = { user: 'ann' };
    if (i % 97 === 0) metadata['ké y"\\'] = 'välue\n"q"';
    const confidence = rng();
    out.push({
      id: `m-${i}${i % 50 === 0 ? '-é' : ''}`,
      content: `content ${i}`,
      embedding: randomEmbedding(rng, DIMS, 'float32'),
      confidence,
      activation: rng(),
      // Random, not in insertion order.
      createdAt: 1_700_000_000_000 + Math.floor(rng() * 1_000_000),
      metadata,
    });
  }
  return out;
}

/** A random filter of the given kind. */
function randomFilter(rng: () => number, kind: string): MemoryFilter {
  const time = () => 1_700_000_000_000 + Math.floor(rng() * 1_000_000);
  switch (kind) {
    case 'createdAfter': return { createdAfter: time() };
    case 'createdBefore': return { createdBefore: time() };
    case 'range': { const a = time(); return { createdAfter: a, createdBefore: a + 100_000 }; }
    case 'minConfidence': return { minConfidence: rng() };
    case 'minActivation': return { minActivation: rng() };
    case 'user': return { metadata: { user: USERS[Math.floor(rng() * USERS.length)]! } };
    case 'users': return { metadata: { user: [USERS[0]!, USERS[Math.floor(rng() * USERS.length)]!] } };
    case 'tag': return { metadata: { tags: 't' + Math.floor(rng() * 20) } };
    case 'flag': return { metadata: { flag: rng() < 0.5 } };
    case 'null': return { metadata: { maybe: null } };
    case 'number': return { metadata: { turn: Math.floor(rng() * 100) } };
    case 'rare': return { metadata: { turn: 7, user: USERS[Math.floor(rng() * USERS.length)]! } };
    case 'escaped': return { metadata: { 'ké y"\\': 'välue\n"q"' } };
    case 'none': return { metadata: { user: 'nobody' } };
    case 'nestedNeverMatches': return { metadata: { user: 'ann', nested: 'ann' } };
    case 'combined':
      return { createdAfter: time() - 500_000, minConfidence: rng() * 0.5, metadata: { tags: ['t1', 't2', 't3', 't4'] } };
    default: return {};
  }
}

const KINDS = ['all', 'createdAfter', 'createdBefore', 'range', 'minConfidence', 'minActivation', 'user', 'users', 'tag', 'flag',
  'null', 'number', 'rare', 'escaped', 'none', 'nestedNeverMatches', 'combined'];

describe('filters', () => {
  const scratch = useScratch();

  function build(): { store: MemoryStore; rows: Map<string, Row>; storePath: string } {
    const storePath = scratch.storePath();
    const store = scratch.open(storePath, { dimensions: DIMS, hotCapacity: 100_000 });
    const rows = new Map<string, Row>();
    const inputs = makeRows(7);
    store.putMany(inputs);
    inputs.forEach((input, i) => {
      const tier = TIERS[i % 3]!;
      expect(store.move(input.id, tier)).toBe(true);
      rows.set(input.id, {
        id: input.id, embedding: toFloat32(input.embedding), confidence: input.confidence!, activation: input.activation!,
        createdAt: input.createdAt!, metadata: input.metadata!, tier,
      });
    });
    expect(store.counts()).toMatchObject({ hot: N / 3, warm: N / 3, cold: N / 3 });
    return { store, rows, storePath };
  }

  it('filtered recall equals a brute force over the matching records, every condition alone and combined, sync and async', async () => {
    const { store, rows } = build();
    const all = [...rows.values()];
    const rng = mulberry32(31);
    const seen = new Set<string>();
    for (const kind of KINDS) {
      for (let round = 0; round < 3; round++) {
        const filter = randomFilter(rng, kind);
        const query = randomEmbedding(rng, DIMS, 'float32');
        const matching = all.filter((r) => matches(r, filter)).length;
        seen.add(matching === 0 ? 'none' : matching === N ? 'every' : matching < N / 100 ? 'under 1%' : 'some');
        for (const k of [1, 10, N]) {
          const want = bruteForce(all, query, k, filter);
          expectHits(store.recall(query, { k, filter }), want, rows, query, `${kind} #${round} k ${k}`);
          expectHits(await store.recallAsync(query, { k, filter }), want, rows, query, `${kind} #${round} async k ${k}`);
        }
        for (const tier of ['hot', 'cold'] as Tier[]) {
          const want = bruteForce(all.filter((r) => r.tier === tier), query, 10, filter);
          expectHits(store.recall(query, { k: 10, tier, filter }), want, rows, query, `${kind} tier ${tier}`);
        }
      }
    }
    expect([...seen].sort(), 'selectivities covered').toEqual(['every', 'none', 'some', 'under 1%']);
    // recall's own minConfidence and the filter's both apply.
    const query = randomEmbedding(rng, DIMS, 'float32');
    const want = bruteForce(all, query, 20, { minConfidence: 0.7, metadata: { flag: true } });
    expectHits(store.recall(query, { k: 20, minConfidence: 0.7, filter: { metadata: { flag: true } } }), want, rows, query, 'both');
  });

  it('filtered list (offset and cursor), iterate and batches yield exactly the matching records', () => {
    const { store, rows } = build();
    const all = [...rows.values()];
    const rng = mulberry32(5);
    let nonEmpty = 0;
    for (const kind of KINDS) {
      const filter = randomFilter(rng, kind);
      for (const tier of ['all', 'hot', 'warm', 'cold'] as TierSelector[]) {
        const want = all.filter((r) => (tier === 'all' || r.tier === tier) && matches(r, filter)).map((r) => r.id).sort();
        if (want.length > 0) nonEmpty++;
        const iterated = [...store.iterate({ tier, filter })];
        expect(iterated.map((m) => m.id).sort(), `${kind} ${tier}: iterate`).toEqual(want);
        for (const m of iterated) expect(matches(rows.get(m.id)!, filter)).toBe(true);
        const batched: string[] = [];
        for (const b of store.iterate({ tier, filter, batchSize: 7 }).batches()) batched.push(...b.ids);
        expect(batched.sort(), `${kind} ${tier}: batches`).toEqual(want);
        // Cursor paging.
        const byCursor: string[] = [];
        let page = store.list({ tier, limit: 13, filter });
        expect(page.tierCounts.total, 'tierCounts stay unfiltered').toBe(N);
        byCursor.push(...page.memories.map((m) => m.id));
        let pages = 1;
        while (page.pagination.nextCursor !== undefined) {
          page = store.list({ limit: 13, filter, cursor: page.pagination.nextCursor });
          byCursor.push(...page.memories.map((m) => m.id));
          pages++;
          expect(pages).toBeLessThan(200);
        }
        expect(byCursor.sort(), `${kind} ${tier}: cursor pages`).toEqual(want);
        // Offset paging gives the same records in the same order as the cursor.
        const byOffset: string[] = [];
        for (let offset = 0; ; offset += 13) {
          const p = store.list({ tier, offset, limit: 13, filter });
          byOffset.push(...p.memories.map((m) => m.id));
          expect(p.count).toBe(p.memories.length);
          if (p.memories.length < 13) break;
        }
        expect(byOffset.sort(), `${kind} ${tier}: offset pages`).toEqual(want);
      }
    }
    expect(nonEmpty).toBeGreaterThan(40);
  });

  it('async iteration with a filter yields the matching records', async () => {
    const { store, rows } = build();
    const filter: MemoryFilter = { metadata: { user: ['ann', 'bob'] }, minActivation: 0.3 };
    const want = [...rows.values()].filter((r) => matches(r, filter)).map((r) => r.id).sort();
    expect(want.length).toBeGreaterThan(50);
    const got: Memory[] = [];
    for await (const m of store.iterate({ filter, batchSize: 16 })) got.push(m);
    expect(got.map((m) => m.id).sort()).toEqual(want);
  });

  it('a cursor keeps its filter: another filter, or none, with it is INVALID_ARGUMENT', () => {
    const { store } = build();
    const filter: MemoryFilter = { metadata: { user: 'ann' } };
    const page = store.list({ tier: 'all', limit: 5, filter });
    const cursor = page.pagination.nextCursor!;
    expect(cursor).toBeDefined();
    for (const other of [undefined, { metadata: { user: 'bob' } }, { metadata: { user: 'ann' }, minConfidence: 0 }]) {
      const e = expectTierStoreError(() => store.list({ cursor, filter: other }), 'INVALID_ARGUMENT', 'other filter');
      expect(e.field).toBe('cursor');
    }
    const plain = store.list({ tier: 'all', limit: 5 }).pagination.nextCursor!;
    expectTierStoreError(() => store.list({ cursor: plain, filter }), 'INVALID_ARGUMENT', 'filter added');
    // The same filter, written with its keys and values in another order, continues.
    const two: MemoryFilter = { minConfidence: 0.1, metadata: { user: ['ann', 'bob'], flag: true } };
    const first = store.list({ tier: 'all', limit: 3, filter: two });
    const next = store.list({
      cursor: first.pagination.nextCursor!, filter: { metadata: { flag: true, user: ['bob', 'ann', 'bob'] }, minConfidence: 0.1 },
    });
    expect(next.memories.length).toBeGreaterThan(0);
    expect(next.memories.every((m) => ['ann', 'bob'].includes(m.metadata.user as string) && m.metadata.flag === true)).toBe(true);
    // Cursors that are not list()'s, or of another tier, name the cursor.
    for (const bad of ['garbage', 'ts1:warm:1:5', 'ts1:all:1:99999999999999999999999']) {
      const e = expectTierStoreError(() => store.list({ tier: 'all', cursor: bad }), 'INVALID_ARGUMENT', bad);
      expect(e.field).toBe('cursor');
    }
  });

  it('a bad filter is INVALID_ARGUMENT naming its path, before anything runs', async () => {
    const { store } = build();
    const q = randomEmbedding(mulberry32(1), DIMS, 'float32');
    const cases: Array<[unknown, string]> = [
      [null, 'filter'],
      ['user', 'filter'],
      [[], 'filter'],
      [{ user: 'ann' }, 'filter.user'],
      [{ createdAfter: '2024' }, 'filter.createdAfter'],
      [{ createdBefore: NaN }, 'filter.createdBefore'],
      [{ minConfidence: Infinity }, 'filter.minConfidence'],
      [{ minActivation: null }, 'filter.minActivation'],
      [{ metadata: 'x' }, 'filter.metadata'],
      [{ metadata: [] }, 'filter.metadata'],
      [{ metadata: { tags: [] } }, 'filter.metadata.tags'],
      [{ metadata: { tags: ['a', { b: 1 }] } }, 'filter.metadata.tags[1]'],
      [{ metadata: { tags: ['a', 'b', ['c']] } }, 'filter.metadata.tags[2]'],
      [{ metadata: { n: NaN } }, 'filter.metadata.n'],
      [{ metadata: { o: { a: 1 } } }, 'filter.metadata.o'],
      [{ metadata: { s: '\ud800' } }, 'filter.metadata.s'],
      [{ metadata: { u: undefined } }, 'filter.metadata.u'],
    ];
    let checked = 0;
    for (const [filter, field] of cases) {
      const what = JSON.stringify(filter) ?? String(filter);
      for (const call of [
        () => store.recall(q, { filter: filter as MemoryFilter }),
        () => store.list({ filter: filter as MemoryFilter }),
        () => store.iterate({ filter: filter as MemoryFilter }),
      ]) {
        const e = expectTierStoreError(call, 'INVALID_ARGUMENT', what);
        expect(e.field, what).toBe(field);
        expect(e.message).toContain(field);
        checked++;
      }
      const rejected = await store.recallAsync(q, { filter: filter as MemoryFilter }).then(() => undefined, (e: unknown) => e);
      expect(rejected, what).toBeInstanceOf(TierStoreError);
      expect((rejected as TierStoreError).field).toBe(field);
    }
    expect(checked).toBe(cases.length * 3);
    // An empty filter, or one with an empty metadata object, sets no condition.
    expect(store.list({ tier: 'all', limit: 1000, filter: {} }).count).toBe(1000);
    expect(store.recall(q, { k: N, filter: { metadata: {} } })).toHaveLength(N);
  });

  it('filtered recallAsync stays exact while another thread writes records that cannot match', async () => {
    const { store, rows, storePath } = build();
    const all = [...rows.values()];
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const ts = require(workerData.entry);
      const s = ts.open(workerData.p);
      let i = 0;
      parentPort.on('message', (n) => {
        const batch = [];
        for (let j = 0; j < n; j++, i++) {
          batch.push({ id: 'bg-' + i, content: 'x', embedding: [1, 0.5, 0.25, 0, 0, 0, 0, 1], confidence: 1,
            createdAt: 1700000000000 + (i % 1000000), metadata: { writer: true, turn: 7 } });
        }
        s.putMany(batch);
        parentPort.postMessage(i);
      });`;
    const worker = new Worker(src, { eval: true, workerData: { entry: path.join(REPO_ROOT, 'dist', 'index.js'), p: storePath } });
    try {
      const rng = mulberry32(77);
      let rounds = 0;
      for (let round = 0; round < 20; round++) {
        const written = new Promise((resolve) => worker.once('message', resolve));
        worker.postMessage(50);
        const filter: MemoryFilter = { metadata: { user: USERS[round % USERS.length]! } };
        const query = randomEmbedding(rng, DIMS, 'float32');
        const hits = await store.recallAsync(query, { k: 10, filter });
        expectHits(hits, bruteForce(all, query, 10, filter), rows, query, `round ${round}`);
        await written;
        rounds++;
      }
      expect(rounds).toBe(20);
      expect(store.counts().total, 'the other thread wrote meanwhile').toBe(N + 1000);
    } finally {
      await worker.terminate();
    }
  });

  it('filtered answers stay exact when warm.filter is removed, damaged or from another close between close and open', async () => {
    const { store, rows, storePath } = build();
    const all = [...rows.values()];
    const rng = mulberry32(77);
    const query = randomEmbedding(rng, DIMS, 'float32');
    store.recall(query, { k: 1, filter: { metadata: { user: 'ann' } } }); // the warm entries are made
    store.close();
    const file = path.join(storePath, 'warm.filter');
    expect(fs.existsSync(file), 'a clean close writes warm.filter').toBe(true);
    const intact = fs.readFileSync(file);
    const filters = KINDS.map((kind) => randomFilter(rng, kind));
    const check = async (what: string) => {
      const s = scratch.open(storePath, { hotCapacity: 100_000 });
      for (const filter of filters) {
        const label = `${what} ${JSON.stringify(filter)}`;
        expectHits(await s.recallAsync(query, { k: 25, filter }), bruteForce(all, query, 25, filter), rows, query, label);
        const want = all.filter((r) => r.tier === 'warm' && matches(r, filter)).map((r) => r.id).sort();
        expect([...s.iterate({ tier: 'warm', filter })].map((m) => m.id).sort(), `${label}: iterate warm`).toEqual(want);
      }
      s.close();
    };
    await check('intact');
    const variants: Array<[string, () => void]> = [
      ['removed', () => fs.rmSync(file)],
      // Entries of the first slots: their signatures and scalars altered, the chunk's checksum not.
      ['entries damaged', () => {
        const b = Buffer.from(intact);
        for (let at = 4096; at < 4096 + 32 * 64; at += 7) b[at] ^= 0xff;
        fs.writeFileSync(file, b);
      }],
      ['header damaged', () => {
        const b = Buffer.from(intact);
        b[20] ^= 1;
        fs.writeFileSync(file, b);
      }],
      ['truncated', () => fs.writeFileSync(file, intact.subarray(0, intact.length - 100))],
      // The file of an earlier close, whose entries describe other records.
      ['from another close', () => {
        const s = scratch.open(storePath, { hotCapacity: 100_000 });
        const ids = all.filter((r) => r.tier === 'warm').slice(0, 40).map((r) => r.id);
        for (const id of ids) {
          const r = rows.get(id)!;
          // What many of the filters ask for, where the old entries say otherwise.
          const metadata = { user: USERS[ids.indexOf(id) % USERS.length]!, turn: 7, tags: ['t1', 't2', 't3', 't4'], flag: true, maybe: null };
          const createdAt = 1_700_000_999_999;
          s.put({ id, content: 'changed', embedding: r.embedding, confidence: r.confidence, activation: r.activation, createdAt, metadata });
          expect(s.move(id, 'warm')).toBe(true);
          rows.set(id, { ...r, createdAt, metadata });
        }
        s.close();
        all.splice(0, all.length, ...rows.values());
        fs.writeFileSync(file, intact);
      }],
    ];
    for (const [what, damage] of variants) {
      damage();
      await check(what);
    }
  });
});
