// State matrix (classic-level style): every public method of MemoryStore,
// called in each state — normal, while an iterator is open, while another
// thread runs migrate() on the same store, after close() — either works or
// throws a TierStoreError with the code documented for that state.
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

// Each public method with valid arguments. Async ones return a promise.
const METHODS: Record<string, (s: MemoryStore) => unknown> = {
  put: (s) => s.put(rec()),
  putMany: (s) => s.putMany([rec(), rec()]),
  get: (s) => s.get('seed-1', { includeEmbedding: true }),
  has: (s) => s.has('seed-2'),
  delete: (s) => s.delete(`x-${counter - 1}`),
  move: (s) => s.move('seed-3', 'cold'),
  migrate: (s) => s.migrate(),
  counts: (s) => s.counts(),
  iterate: (s) => [...s.iterate({ tier: 'all', batchSize: 3 })].length,
  iterateAsync: async (s) => {
    let n = 0;
    for await (const _ of s.iterate({ batchSize: 3 })) n++;
    return n;
  },
  batches: (s) => [...s.iterate({ includeEmbeddings: true }).batches()].length,
  list: (s) => s.list({ tier: 'all', limit: 5 }),
  recall: (s) => s.recall([1, 0, 0, 0], { k: 3 }),
  recallAsync: (s) => s.recallAsync([1, 0, 0, 0], { k: 3 }),
  flush: (s) => s.flush(),
  compact: (s) => s.compact(),
  stats: (s) => s.stats(),
};

async function outcome(fn: () => unknown): Promise<'ok' | string> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(TierStoreError);
    return (e as TierStoreError).code;
  }
}

function seeded(p: string = storePath()): MemoryStore {
  const s = open(p, { dimensions: DIMS, hotCapacity: 5, warmCapacity: 5 });
  s.putMany(Array.from({ length: 30 }, (_, i) => ({ id: `seed-${i}`, content: `s${i}`, embedding: [i, 1, 1, 1] })));
  return s;
}

describe('state matrix', () => {
  it('normal: every method works', async () => {
    const s = seeded();
    for (const [name, fn] of Object.entries(METHODS)) expect(await outcome(() => fn(s)), name).toBe('ok');
    s.close();
  });

  it('while an iterator is open (sync and async): every method works, and the iterator still finishes', async () => {
    const s = seeded();
    const syncIt = s.iterate({ batchSize: 2 })[Symbol.iterator]();
    const asyncIt = s.iterate({ batchSize: 2 })[Symbol.asyncIterator]();
    syncIt.next();
    await asyncIt.next();
    for (const [name, fn] of Object.entries(METHODS)) {
      expect(await outcome(() => fn(s)), name).toBe('ok');
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
    // 2 in turn (records keep moving) until told to stop.
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const ts = require(workerData.entry);
       const a = ts.open(workerData.p, { hotCapacity: 0, warmCapacity: 2 });
       const b = ts.open(workerData.p, { hotCapacity: 2, warmCapacity: 0 });
       let stop = false, runs = 0;
       parentPort.on('message', () => { stop = true; });
       (function loop() {
         if (stop) { a.close(); b.close(); parentPort.postMessage(runs); return; }
         (runs % 2 ? a : b).migrate(); runs++;
         setImmediate(loop);
       })();`,
      { eval: true, workerData: { entry: path.join(REPO_ROOT, 'dist', 'index.js'), p } },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let round = 0; round < 3; round++) {
      for (const [name, fn] of Object.entries(METHODS)) expect(await outcome(() => fn(s)), name).toBe('ok');
    }
    const runs = await new Promise<number>((resolve) => {
      worker.once('message', resolve);
      worker.postMessage('stop');
    });
    await worker.terminate();
    expect(runs).toBeGreaterThan(0);
    // Consistent afterwards: every id once.
    const ids = [...s.iterate()].map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(s.counts().total);
    s.close();
  });

  it('after close(): every method throws (or rejects with) STORE_CLOSED, and close() again is a no-op', async () => {
    const s = seeded();
    s.close();
    for (const [name, fn] of Object.entries(METHODS)) expect(await outcome(() => fn(s)), name).toBe('STORE_CLOSED');
    expect(() => s.close()).not.toThrow();
  });

  it('read-only handle: reads work, writes throw READ_ONLY', async () => {
    const p = storePath();
    seeded(p).close();
    const s = open(p, { readOnly: true });
    const writes = new Set(['put', 'putMany', 'delete', 'move', 'migrate', 'compact']);
    for (const [name, fn] of Object.entries(METHODS)) {
      expect(await outcome(() => fn(s)), name).toBe(writes.has(name) ? 'READ_ONLY' : 'ok');
    }
    s.close();
  });
});
