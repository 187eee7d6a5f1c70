// State matrix (classic-level style): every public method of MemoryStore,
// called in each state — normal, while an iterator is open, while another
// thread is inside migrate() on the same store, after close() — either works
// (and returns what it should: each method's result is checked) or throws a
// TierStoreError with the code documented for that state.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { open, TierStoreError, type MemoryStore } from '../lib/index.js';

const DIMS = 4;
const REPO_ROOT = path.resolve(__dirname, '..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function storePath(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-matrix-'));
  dirs.push(d);
  return path.join(d, 'db');
}

let counter = 0;
const rec = () => ({ id: `x-${counter++}`, content: 'c', embedding: [1, 2, 3, counter % 7] });

// Each public method with valid arguments, and a check of what it returned
// when it worked (a method that returns garbage without throwing fails).
// Async ones return a promise.
type Method = { call: (s: MemoryStore) => unknown; check: (result: any, s: MemoryStore) => void };
const METHODS: Record<string, Method> = {
  put: { call: (s) => { const r = rec(); s.put(r); return r.id; }, check: (id, s) => expect(s.get(id)?.content).toBe('c') },
  putMany: { call: (s) => s.putMany([rec(), rec()]), check: (n, s) => { expect(n).toBe(2); expect(s.has(`x-${counter - 1}`)).toBe(true); } },
  get: {
    call: (s) => s.get('seed-1', { includeEmbedding: true }),
    check: (m) => { expect(m?.id).toBe('seed-1'); expect(m?.content).toBe('s1'); expect([...m!.embedding!]).toEqual([1, 1, 1, 1]); },
  },
  has: { call: (s) => s.has('seed-2'), check: (r) => expect(r).toBe(true) },
  delete: {
    call: (s) => { const id = `x-${counter - 1}`; return [id, s.delete(id)]; },
    check: ([id, r], s) => { expect(r).toBe(true); expect(s.has(id)).toBe(false); },
  },
  move: { call: (s) => s.move('seed-3', 'cold'), check: (r, s) => { expect(r).toBe(true); expect(s.get('seed-3')?.tier).toBe('cold'); } },
  migrate: { call: (s) => s.migrate(), check: (r) => expect(r).toMatchObject({ hotToWarm: expect.any(Number), batches: expect.any(Number) }) },
  counts: { call: (s) => s.counts(), check: (c) => expect(c.total).toBe(c.hot + c.warm + c.cold) },
  iterate: {
    call: (s) => { const ids = [...s.iterate({ tier: 'all', batchSize: 3 })].map((m) => m.id); return [ids, s.counts().total]; },
    check: ([ids, total]) => { expect(ids.length).toBe(total); expect(new Set(ids).size).toBe(total); expect(ids).toContain('seed-0'); },
  },
  iterateAsync: {
    call: async (s) => {
      const ids: string[] = [];
      for await (const m of s.iterate({ batchSize: 3 })) ids.push(m.id);
      return [ids, s.counts().total];
    },
    check: ([ids, total]) => { expect(ids.length).toBe(total); expect(new Set(ids).size).toBe(total); },
  },
  batches: {
    call: (s) => { let n = 0, dims = 0; for (const b of s.iterate({ includeEmbeddings: true }).batches()) { n += b.ids.length; dims += b.embeddings!.length; } return [n, dims, s.counts().total]; },
    check: ([n, dims, total]) => { expect(n).toBe(total); expect(dims).toBe(total * DIMS); },
  },
  list: {
    call: (s) => s.list({ tier: 'all', limit: 5 }),
    check: (p) => { expect(p.count).toBe(5); expect(p.memories).toHaveLength(5); expect(p.tierCounts.total).toBeGreaterThanOrEqual(30); },
  },
  recall: { call: (s) => s.recall([1, 0, 0, 0], { k: 3 }), check: (hits) => { expect(hits).toHaveLength(3); expect(hits[0].score).toBeGreaterThanOrEqual(hits[2].score); } },
  recallAsync: { call: (s) => s.recallAsync([1, 0, 0, 0], { k: 3 }), check: (hits) => expect(hits).toHaveLength(3) },
  flush: { call: (s) => s.flush(), check: (r) => expect(r).toBeUndefined() },
  compact: { call: (s) => s.compact(), check: (r) => expect(r).toMatchObject({ coldSegmentsAfter: expect.any(Number) }) },
  stats: { call: (s) => s.stats(), check: (r) => { expect(r.dimensions).toBe(DIMS); expect(r.counts.total).toBeGreaterThanOrEqual(30); } },
};

/** Calls method `name`: 'ok' once its result passed its check, or the TierStoreError code it threw. */
async function outcome(s: MemoryStore, name: string): Promise<'ok' | string> {
  const m = METHODS[name]!;
  let result: unknown;
  try {
    result = await m.call(s);
  } catch (e) {
    expect(e, name).toBeInstanceOf(TierStoreError);
    return (e as TierStoreError).code;
  }
  m.check(result, s);
  return 'ok';
}

function seeded(p: string = storePath()): MemoryStore {
  const s = open(p, { dimensions: DIMS, hotCapacity: 5, warmCapacity: 5 });
  s.putMany(Array.from({ length: 30 }, (_, i) => ({ id: `seed-${i}`, content: `s${i}`, embedding: [i, 1, 1, 1] })));
  return s;
}

describe('state matrix', () => {
  it('normal: every method works', async () => {
    const s = seeded();
    for (const name of Object.keys(METHODS)) expect(await outcome(s, name), name).toBe('ok');
    s.close();
  });

  it('while an iterator is open (sync and async): every method works, and the iterator still finishes', async () => {
    const s = seeded();
    const syncIt = s.iterate({ batchSize: 2 })[Symbol.iterator]();
    const asyncIt = s.iterate({ batchSize: 2 })[Symbol.asyncIterator]();
    syncIt.next();
    await asyncIt.next();
    for (const name of Object.keys(METHODS)) {
      expect(await outcome(s, name), name).toBe('ok');
      syncIt.next();
      await asyncIt.next();
    }
    while (!syncIt.next().done);
    while (!(await asyncIt.next()).done);
    s.close();
  });

  it('while another thread runs migrate() on the same store: every method works', async () => {
    const p = storePath();
    const s = open(p, { dimensions: DIMS, hotCapacity: 1000, warmCapacity: 1000 });
    s.putMany(Array.from({ length: 30 }, (_, i) => ({ id: `seed-${i}`, content: `s${i}`, embedding: [i, 1, 1, 1] })));
    // The worker shares the native store and migrates with capacities of 0 and
    // 2 in turn (records keep moving) until told to stop. It raises a shared
    // flag around each migrate() and counts them: each method below is called
    // while the flag is up, so every call meets a migration in progress.
    const shared = new Int32Array(new SharedArrayBuffer(12)); // [inside migrate, migrations done, stop]
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const ts = require(workerData.entry);
       const f = workerData.shared;
       const a = ts.open(workerData.p, { hotCapacity: 0, warmCapacity: 2 });
       const b = ts.open(workerData.p, { hotCapacity: 2, warmCapacity: 0 });
       for (let runs = 0; Atomics.load(f, 2) === 0; runs++) {
         Atomics.store(f, 0, 1);
         (runs % 2 ? a : b).migrate();
         Atomics.store(f, 0, 0);
         Atomics.add(f, 1, 1);
       }
       a.close(); b.close();`,
      { eval: true, workerData: { entry: path.join(REPO_ROOT, 'dist', 'index.js'), p, shared } },
    );
    const exited = new Promise((resolve, reject) => { worker.once('exit', resolve); worker.once('error', reject); });
    /** Waits (by count of polls, not time) until the worker is inside a migrate() that began after the last call's. */
    let lastDone = -1;
    const insideMigrate = () => {
      for (let polls = 0; Atomics.load(shared, 0) !== 1 || Atomics.load(shared, 1) === lastDone; polls++) {
        if (polls > 2e9) throw new Error('the worker never entered migrate()');
      }
      lastDone = Atomics.load(shared, 1);
    };
    let calls = 0;
    const before = Atomics.load(shared, 1);
    for (let round = 0; round < 3; round++) {
      for (const name of Object.keys(METHODS)) {
        insideMigrate();
        calls++;
        expect(await outcome(s, name), name).toBe('ok');
      }
    }
    Atomics.store(shared, 2, 1);
    await exited;
    // A different migration was in progress when each call began.
    expect(Atomics.load(shared, 1) - before).toBeGreaterThanOrEqual(calls - 1);
    // Consistent afterwards: every id once.
    const ids = [...s.iterate()].map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(s.counts().total);
    s.close();
  });

  it('after close(): every method throws (or rejects with) STORE_CLOSED, and close() again is a no-op', async () => {
    const s = seeded();
    s.close();
    for (const name of Object.keys(METHODS)) expect(await outcome(s, name), name).toBe('STORE_CLOSED');
    expect(() => s.close()).not.toThrow();
  });

  it('read-only handle: reads work, writes throw READ_ONLY', async () => {
    const p = storePath();
    seeded(p).close();
    const s = open(p, { readOnly: true });
    const writes = new Set(['put', 'putMany', 'delete', 'move', 'migrate', 'compact']);
    for (const name of Object.keys(METHODS)) {
      expect(await outcome(s, name), name).toBe(writes.has(name) ? 'READ_ONLY' : 'ok');
    }
    s.close();
  });
});
