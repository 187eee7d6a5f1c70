// The iteration contract (docs/api.md `.iterate()`): exactly-once while every put demotes,
// iteration and paging agree with counts() in every tier, misuse errors, and
// memory bounded by the batch size while iterating a million cold records
// (measured in a child process, so this test's own heap does not count).
import { spawnAsync } from './helpers/child.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open, TierStoreError, type TierSelector } from '../lib/index.js';
import { mulberry32 } from './helpers/random.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function storePath(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-iter-'));
  dirs.push(d);
  return path.join(d, 'db');
}

const DIMS = 16;
function records(from: number, to: number, rng: () => number) {
  const out = [];
  for (let i = from; i < to; i++) {
    const embedding = new Float32Array(DIMS);
    for (let j = 0; j < DIMS; j++) embedding[j] = rng() * 2 - 1;
    out.push({ id: `m-${i}`, content: `content ${i} ✓`, embedding, activation: Math.fround(rng()), metadata: { i } });
  }
  return out;
}

describe('iteration contract', () => {
  it("'all' over 20,000 records yields each exactly once while the loop body puts 20,000 more, each put demoting", () => {
    const rng = mulberry32(20000);
    const store = open(storePath(), { dimensions: DIMS, hotCapacity: 1, warmCapacity: 8000 });
    store.putMany(records(0, 20000, rng));
    store.migrate();
    const before = store.counts();
    expect(before.total).toBe(20000);
    expect(before.cold).toBeGreaterThan(0);
    const seen = new Map<string, number>();
    let next = 20000;
    for (const m of store.iterate({ batchSize: 256 })) {
      seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
      if (next < 40000) store.put(records(next, next + 1, rng)[0]!), next++;
    }
    expect(next).toBe(40000);
    for (let i = 0; i < 20000; i++) expect(seen.get(`m-${i}`), `m-${i}`).toBe(1);
    const after = store.counts();
    expect(after.total).toBe(40000);
    expect(after.hot).toBeLessThanOrEqual(1);
    expect(after.warm).toBeLessThanOrEqual(8000);
    store.close();
  });

  it('iterating one tier, a record the loop body moves out of the tier and back is not yielded again (each tier, sync and async)', async () => {
    const rng = mulberry32(515);
    for (const tier of ['hot', 'warm', 'cold'] as const) {
      for (const mode of ['sync', 'async'] as const) {
        const store = open(storePath(), { dimensions: DIMS });
        const recs = records(0, 60, rng);
        store.putMany(recs);
        for (const r of recs) store.move(r.id, tier);
        const away = tier === 'hot' ? 'cold' : 'hot';
        const third = tier === 'warm' ? 'cold' : 'warm';
        const seen = new Map<string, number>();
        const body = (id: string) => {
          seen.set(id, (seen.get(id) ?? 0) + 1);
          // Out and straight back, then out through the third tier and back: unchanged all along.
          store.move(id, away);
          store.move(id, tier);
          store.move(id, third);
          store.move(id, tier);
        };
        const it = store.iterate({ tier, batchSize: 1 });
        let n = 0;
        if (mode === 'sync') {
          for (const m of it) { body(m.id); if (++n > 200) break; }
        } else {
          for await (const m of it) { body(m.id); if (++n > 200) break; }
        }
        for (const r of recs) expect(seen.get(r.id), `${tier} ${mode} ${r.id}`).toBe(1);
        expect(store.counts()[tier]).toBe(60);
        store.close();
      }
    }
  });

  it('a loop that writes a new record (or upserts one) for every record it reads ends: versions written after the iterator began are not yielded', async () => {
    const rng = mulberry32(77);
    for (const tier of ['all', 'hot', 'warm', 'cold'] as TierSelector[]) {
      for (const mode of ['sync', 'async', 'batches'] as const) {
        // Small capacities: the new records demote into warm and cold, ahead of the scan too.
        const store = open(storePath(), { dimensions: DIMS, hotCapacity: 40, warmCapacity: 120 });
        store.putMany(records(0, 300, rng));
        const start = store.counts();
        const inScope = tier === 'all' ? start.total : start[tier];
        const idsIn = () => new Set([...store.iterate({ tier })].map((m) => m.id));
        const atStart = idsIn();
        expect(atStart.size, `${tier}/${mode}: records to iterate`).toBe(inScope);
        let next = 1000;
        const seen = new Map<string, number>();
        const upserted = new Set<string>();
        const body = (id: string) => {
          seen.set(id, (seen.get(id) ?? 0) + 1);
          // a derived record, and an upsert of a record the scan may not have reached
          store.put({ ...records(next, next + 1, rng)[0]!, id: `derived-${next++}` });
          const target = `m-${(next * 7) % 300}`;
          upserted.add(target);
          store.put({ ...records(0, 1, rng)[0]!, id: target });
          if (seen.size > 10 * inScope) throw new Error(`${tier}/${mode}: the loop does not end`);
        };
        const it = store.iterate({ tier, batchSize: 16 });
        if (mode === 'sync') for (const m of it) body(m.id);
        else if (mode === 'async') for await (const m of it) body(m.id);
        else for (const b of it.batches()) for (const id of b.ids) body(id);
        for (const [id, n] of seen) {
          expect(id.startsWith('derived-'), `${tier}/${mode}: ${id} was written after the iterator began`).toBe(false);
          expect(n, `${tier}/${mode}: ${id} yielded once`).toBe(1);
        }
        // A record that moves into the tier ahead of the scan during the loop
        // (demoted from above) existed before the iterator began, and may be
        // yielded: the bound for one tier is every record there was.
        expect(seen.size, `${tier}/${mode}: at most the records there were`).toBeLessThanOrEqual(tier === 'all' ? inScope : start.total);
        // And at least every record that stayed in scope unchanged the whole
        // time (in the tier at the start and at the end: records only move
        // down here, so they never left it; never upserted): each exactly once.
        const atEnd = idsIn();
        const stayed = [...atStart].filter((id) => atEnd.has(id) && !upserted.has(id));
        expect(stayed.length, `${tier}/${mode}: records stayed in scope unchanged`).toBeGreaterThan(0);
        const missed = stayed.filter((id) => seen.get(id) !== 1);
        expect(missed, `${tier}/${mode}: unchanged records not yielded exactly once`).toEqual([]);
        expect(store.counts().total).toBe(300 + (next - 1000));
        store.close();
      }
    }
  });

  it('iteration, offset paging and cursor paging return exactly the records counts() reports, per tier and all', () => {
    const rng = mulberry32(7);
    const store = open(storePath(), { dimensions: DIMS, hotCapacity: 300, warmCapacity: 700 });
    store.putMany(records(0, 2500, rng));
    store.migrate();
    const counts = store.counts();
    const want: Record<TierSelector, number> = {
      hot: counts.hot, warm: counts.warm, cold: counts.cold, all: counts.total,
    };
    for (const tier of ['hot', 'warm', 'cold', 'all'] as const) {
      for (const includeEmbeddings of [false, true]) {
        const iterated = [...store.iterate({ tier, includeEmbeddings, batchSize: 97 })];
        expect(iterated).toHaveLength(want[tier]);
        expect(new Set(iterated.map((m) => m.id)).size).toBe(want[tier]);
        if (tier !== 'all') for (const m of iterated) expect(m.tier).toBe(tier);
        for (const m of iterated) expect(m.embedding !== undefined).toBe(includeEmbeddings);
        const byOffset: string[] = [];
        for (let offset = 0; ; ) {
          const page = store.list({ tier, offset, limit: 333, includeEmbeddings });
          expect(page.count).toBe(page.memories.length);
          if (page.count === 0) break;
          byOffset.push(...page.memories.map((m) => m.id));
          offset += page.count;
        }
        const byCursor: string[] = [];
        let cursor: string | undefined;
        do {
          const page = cursor === undefined ? store.list({ tier, limit: 333 }) : store.list({ tier, cursor, limit: 333 });
          byCursor.push(...page.memories.map((m) => m.id));
          cursor = page.pagination.nextCursor;
        } while (cursor !== undefined);
        // Only the first page names the tier: a cursor alone continues its listing.
        const byCursorAlone: string[] = [];
        cursor = undefined;
        do {
          const page = cursor === undefined ? store.list({ tier, limit: 333 }) : store.list({ cursor, limit: 333 });
          byCursorAlone.push(...page.memories.map((m) => m.id));
          cursor = page.pagination.nextCursor;
        } while (cursor !== undefined);
        // Same records, same order, as the iterator.
        expect(byOffset).toEqual(iterated.map((m) => m.id));
        expect(byCursor).toEqual(iterated.map((m) => m.id));
        expect(byCursorAlone).toEqual(iterated.map((m) => m.id));
      }
    }
    store.close();
  });

  it('batchSize outside 1..65536 is INVALID_ARGUMENT; next() after close() is STORE_CLOSED', async () => {
    const store = open(storePath(), { dimensions: DIMS });
    store.putMany(records(0, 10, mulberry32(1)));
    for (const batchSize of [0, -1, 65537, 1.5, Number.NaN]) {
      expect(() => store.iterate({ batchSize })).toThrow(TierStoreError);
      try {
        store.iterate({ batchSize });
      } catch (e) {
        expect((e as TierStoreError).code).toBe('INVALID_ARGUMENT');
      }
    }
    expect([...store.iterate({ batchSize: 65536 })]).toHaveLength(10);
    const sync = store.iterate({ batchSize: 1 })[Symbol.iterator]();
    const async = store.iterate({ batchSize: 1 })[Symbol.asyncIterator]();
    // The default batch size: the rest of the first batch is buffered in JS,
    // and close() stops it too (nothing more is yielded).
    const buffered = store.iterate()[Symbol.iterator]();
    const bufferedAsync = store.iterate()[Symbol.asyncIterator]();
    const finished = store.iterate()[Symbol.iterator]();
    expect(sync.next().done).toBe(false);
    expect((await async.next()).done).toBe(false);
    expect(buffered.next().done).toBe(false);
    expect((await bufferedAsync.next()).done).toBe(false);
    expect([...{ [Symbol.iterator]: () => finished }]).toHaveLength(10);
    const batches = store.iterate().batches();
    store.close();
    expect(() => sync.next()).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
    await expect(async.next()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
    expect(() => buffered.next()).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
    await expect(bufferedAsync.next()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
    expect(() => batches.next()).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }));
    // Once stopped they stay done; an iteration that had finished is just done.
    expect(buffered.next().done).toBe(true);
    expect((await bufferedAsync.next()).done).toBe(true);
    expect(finished.next().done).toBe(true);
  });

  it('async next() calls made before earlier ones settled resolve in call order (the async iterator queue)', async () => {
    const store = open(storePath(), { dimensions: DIMS });
    const recs = records(0, 30, mulberry32(3));
    store.putMany(recs);
    const expected = [...store.iterate()].map((m) => m.id);
    for (const batchSize of [1, 4, 64]) {
      const it = store.iterate({ batchSize })[Symbol.asyncIterator]();
      const got: Array<[number, string | undefined]> = [];
      const calls: Array<Promise<unknown>> = [];
      let call = 0;
      const ask = (): Promise<unknown> => {
        const n = call++;
        const p = it.next().then((r) => {
          got.push([n, r.done ? undefined : r.value.id]);
          // Some calls made from inside a settled one, while others are pending.
          if (call < 34) calls.push(ask());
        });
        calls.push(p);
        return p;
      };
      for (let i = 0; i < 12; i++) ask();
      for (let i = 0; i < calls.length; i++) await calls[i];
      got.sort((a, b) => a[0] - b[0]);
      const ids = got.map(([, id]) => id);
      expect(ids.slice(0, 30), `batchSize ${batchSize}: call k gets record k`).toEqual(expected);
      expect(ids.slice(30).every((id) => id === undefined), `batchSize ${batchSize}: later calls are done`).toBe(true);
    }
    store.close();
  });

  it('iterating 1,000,000 cold records without embeddings grows anonymous memory by less than 64 MB', async () => {
    const dir = storePath();
    const script = path.join(__dirname, 'helpers', 'iterate-memory.cjs');
    const result = await spawnAsync(process.execPath, ['--expose-gc', script, dir, '1000000'], { timeout: 600_000 });
    expect(result.signal, result.stderr).toBeNull();
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.trim().split('\n').pop()!) as {
      count: number; unique: number; baselineRss: number; peakRss: number;
    };
    expect(report.count).toBe(1_000_000);
    expect(report.unique).toBe(1_000_000);
    expect(report.peakRss - report.baselineRss).toBeLessThan(64 * 1024 * 1024);
  }, 600_000);
});
