// Worker threads (docs/api.md, "Handles, processes and threads"): opening the
// same path from several worker threads of one process shares one native
// store safely — no STORE_LOCKED
// within the process, every thread sees the others' writes, concurrent writes
// lose nothing, an iteration in one thread while another writes yields each
// unchanged record exactly once, and a thread closing (or dying) does not
// close the store for the others.
//
// The worker loads the built package (dist/), like the cross-process tests.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { MemoryStore } from '../lib/index.js';
import { describeChild, REPO_ROOT, runChild } from './helpers/child.js';
import { iterateAll, snapshot, useScratch } from './helpers/store.js';

const DIMS = 6;

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const ts = require(workerData.entry);
let s;
const rec = (id, i) => ({ id, content: 'content ' + id + ' ' + 'é'.repeat(i % 11), embedding: [i, 1, 2, 3, 4, 5].map((x) => Math.sin(x + i)), activation: (i % 100) / 100, createdAt: i });
parentPort.on('message', (msg) => {
  try {
    switch (msg.op) {
      case 'open': s = ts.open(workerData.p, msg.options); parentPort.postMessage({ ok: true, dims: s.dimensions }); break;
      case 'put': for (let i = msg.from; i < msg.to; i++) s.put(rec(msg.prefix + i, i)); parentPort.postMessage({ ok: true }); break;
      case 'putMany': {
        for (let i = msg.from; i < msg.to; i += 100) {
          const b = []; for (let j = i; j < Math.min(msg.to, i + 100); j++) b.push(rec(msg.prefix + j, j));
          s.putMany(b);
        }
        parentPort.postMessage({ ok: true }); break;
      }
      case 'churn': {
        for (let i = 0; i < msg.n; i++) {
          s.put(rec(msg.prefix + (i % 50), i));
          if (i % 7 === 0) s.move(msg.prefix + (i % 50), ['hot', 'warm', 'cold'][i % 3]);
          if (i % 97 === 0) s.migrate();
        }
        parentPort.postMessage({ ok: true }); break;
      }
      case 'read': {
        const ids = []; for (const m of s.iterate()) ids.push(m.id);
        parentPort.postMessage({ ok: true, ids, total: s.counts().total, got: msg.id ? (s.get(msg.id) || null) : null }); break;
      }
      case 'openClose': {
        // Opens and closes the path over and over (no handle kept): the others race it.
        const failures = [];
        for (let i = 0; i < msg.n; i++) {
          try {
            const h = ts.open(workerData.p, msg.options);
            if (h.get(msg.id) === undefined) failures.push('the record went missing');
            h.close();
          } catch (e) {
            failures.push(String(e && e.code) + ': ' + String(e && e.message));
          }
        }
        parentPort.postMessage({ ok: true, failures }); break;
      }
      case 'close': s.close(); parentPort.postMessage({ ok: true }); break;
    }
  } catch (e) {
    parentPort.postMessage({ ok: false, code: e && e.code, message: String(e && e.message), name: e && e.constructor && e.constructor.name });
  }
});
`;

class StoreWorker {
  private readonly w: Worker;
  private queue: Array<(v: Record<string, unknown>) => void> = [];

  constructor(p: string) {
    this.w = new Worker(WORKER, { eval: true, workerData: { entry: path.join(REPO_ROOT, 'dist', 'index.js'), p } });
    this.w.on('message', (m: Record<string, unknown>) => this.queue.shift()?.(m));
    this.w.on('error', (e) => {
      for (const q of this.queue.splice(0)) q({ ok: false, message: `worker error: ${String(e)}` });
    });
  }

  call(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.w.postMessage(msg);
    });
  }

  async ok(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const r = await this.call(msg);
    expect(r, `worker ${String(msg.op)}`).toMatchObject({ ok: true });
    return r;
  }

  terminate(): Promise<number> {
    return this.w.terminate();
  }
}

const rec = (id: string, i: number) => ({
  id,
  content: `content ${id} ${'é'.repeat(i % 11)}`,
  embedding: [i, 1, 2, 3, 4, 5].map((x) => Math.sin(x + i)),
  activation: (i % 100) / 100,
  createdAt: i,
});

describe('one store shared by worker threads', () => {
  const scratch = useScratch();
  const workers: StoreWorker[] = [];
  const start = (p: string) => {
    const w = new StoreWorker(p);
    workers.push(w);
    return w;
  };
  const stopAll = async () => {
    for (const w of workers.splice(0)) await w.terminate();
  };

  it('a worker opens the path this thread holds (no STORE_LOCKED) and each sees the other’s writes', async () => {
    try {
      const p = scratch.storePath();
      const s = scratch.open(p, { dimensions: DIMS });
      const w = start(p);
      expect(await w.ok({ op: 'open' })).toMatchObject({ dims: DIMS });
      s.put(rec('from-main', 1));
      await w.ok({ op: 'put', prefix: 'from-worker-', from: 0, to: 10 });
      expect(s.counts().total, 'main sees the worker’s writes').toBe(11);
      expect(s.get('from-worker-3')?.content).toBe(rec('from-worker-3', 3).content);
      const r = await w.ok({ op: 'read', id: 'from-main' });
      expect(r.total, 'the worker sees main’s write').toBe(11);
      expect((r.got as { content: string }).content).toBe(rec('from-main', 1).content);
      expect(await w.call({ op: 'open', options: { dimensions: DIMS + 1 } }), 'other dimensions are still refused').toMatchObject({ ok: false, code: 'DIMENSION_MISMATCH' });
    } finally {
      await stopAll();
    }
  });

  it('a writable open in this thread while only a worker holds the store read-only shares it with the worker', async () => {
    try {
      const p = scratch.storePath();
      const created = scratch.open(p, { dimensions: DIMS });
      created.put(rec('before', 0));
      created.close();
      const w = start(p);
      await w.ok({ op: 'open', options: { readOnly: true } });
      const s = scratch.open(p);
      s.put(rec('from-main', 1));
      const r = await w.ok({ op: 'read', id: 'from-main' });
      expect(r.total, 'the read-only worker sees main’s write').toBe(2);
      expect((r.got as { content: string }).content).toBe(rec('from-main', 1).content);
      expect(await w.call({ op: 'put', prefix: 'ro-', from: 0, to: 1 }), 'the worker’s handle stays read-only').toMatchObject({ ok: false, code: 'READ_ONLY' });
      await w.ok({ op: 'close' });
      s.put(rec('after-worker-closed', 2));
      expect(s.counts().total).toBe(3);
    } finally {
      await stopAll();
    }
  });

  it('threads opening and closing one path at once never get STORE_LOCKED, writable or read-only', async () => {
    // An open that comes while another thread's last handle is closing must
    // wait for the close, not find the file lock still held by this very
    // process.
    try {
      const p = scratch.storePath();
      const created = scratch.open(p, { dimensions: DIMS });
      created.put(rec('kept', 1));
      created.close();
      for (const readOnly of [false, true]) {
        const a = start(p);
        const b = start(p);
        const results = await Promise.all([
          a.ok({ op: 'openClose', n: 150, id: 'kept' }),
          b.ok({ op: 'openClose', n: 150, id: 'kept', options: { readOnly } }),
        ]);
        expect(results.flatMap((r) => r.failures as string[]), readOnly ? 'a writer and a reader' : 'two writers').toEqual([]);
        await stopAll();
      }
      expect(scratch.open(p).get('kept')?.content).toBe(rec('kept', 1).content);
    } finally {
      await stopAll();
    }
  }, 120_000);

  it('concurrent writes from three threads lose nothing and duplicate nothing, also across migration', async () => {
    try {
      const p = scratch.storePath();
      const s = scratch.open(p, { dimensions: DIMS, hotCapacity: 50, warmCapacity: 200 });
      const w1 = start(p);
      const w2 = start(p);
      await w1.ok({ op: 'open', options: { hotCapacity: 30, warmCapacity: 100 } });
      await w2.ok({ op: 'open', options: { hotCapacity: 30, skipWarm: true } });
      const jobs = [w1.ok({ op: 'put', prefix: 'w1-', from: 0, to: 1500 }), w2.ok({ op: 'putMany', prefix: 'w2-', from: 0, to: 3000 })];
      for (let i = 0; i < 1500; i++) {
        s.put(rec(`m-${i}`, i));
        if (i % 200 === 0) s.migrate();
      }
      await Promise.all(jobs);
      s.migrate();
      const ids = iterateAll(s, 'all').map((m) => m.id);
      expect(ids.length).toBe(6000);
      expect(new Set(ids).size, 'one copy per id').toBe(6000);
      expect(s.counts().total).toBe(6000);
      for (const [prefix, n] of [['m-', 1500], ['w1-', 1500], ['w2-', 3000]] as const) {
        for (let i = 0; i < n; i += 37) expect(s.get(`${prefix}${i}`)?.content, `${prefix}${i}`).toBe(rec(`${prefix}${i}`, i).content);
      }
    } finally {
      await stopAll();
    }
  }, 120_000);

  it('iterating in this thread while a worker writes and migrates yields every unchanged record exactly once', async () => {
    try {
      const p = scratch.storePath();
      const s = scratch.open(p, { dimensions: DIMS, hotCapacity: 40, warmCapacity: 120 });
      for (let i = 0; i < 1000; i += 100) s.putMany(Array.from({ length: 100 }, (_, k) => rec(`stable-${i + k}`, i + k)));
      s.migrate();
      const w = start(p);
      await w.ok({ op: 'open', options: { hotCapacity: 40, warmCapacity: 120 } });
      const churn = w.ok({ op: 'churn', prefix: 'busy-', n: 4000 });
      const seen = new Map<string, number>();
      for await (const m of s.iterate({ batchSize: 5 })) {
        seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
        expect(['hot', 'warm', 'cold']).toContain(m.tier);
      }
      await churn;
      const wrong: string[] = [];
      for (let i = 0; i < 1000; i++) if (seen.get(`stable-${i}`) !== 1) wrong.push(`stable-${i}×${seen.get(`stable-${i}`) ?? 0}`);
      expect(wrong, 'stable records yielded exactly once').toEqual([]);
    } finally {
      await stopAll();
    }
  }, 120_000);

  it('a worker closing its handle, or being terminated, leaves the store open for the others; the last close releases it', async () => {
    try {
      const p = scratch.storePath();
      let s: MemoryStore = scratch.open(p, { dimensions: DIMS });
      s.put(rec('a', 1));
      const w1 = start(p);
      const w2 = start(p);
      await w1.ok({ op: 'open' });
      await w2.ok({ op: 'open' });
      await w1.ok({ op: 'put', prefix: 'w1-', from: 0, to: 5 });
      await w1.ok({ op: 'close' });
      expect(await w1.call({ op: 'read' }), 'the closed handle is closed').toMatchObject({ ok: false, code: 'STORE_CLOSED' });
      expect(s.counts().total, 'main still works after a worker closed').toBe(6);
      await w2.ok({ op: 'put', prefix: 'w2-', from: 0, to: 5 });
      await workers.splice(workers.indexOf(w2), 1)[0]!.terminate(); // dies without close()
      s.put(rec('b', 2));
      expect(s.counts().total, 'main still works after a worker died').toBe(12);
      const before = snapshot(s);
      s.close();
      s = scratch.open(p);
      expect(snapshot(s), 'everything persisted').toEqual(before);
      s.close();
      // Every handle of this process is closed or its thread is gone: another process may open now.
      const r = runChild(`try { const o = ts.open(args.p); emit('RESULT', { ok: true, total: o.counts().total }); o.close(); } catch (e) { emit('RESULT', { ok: false, ...errorInfo(e) }); }`, { p });
      expect(r.status === 0 && r.signal === null, describeChild(r)).toBe(true);
      expect(r.result, 'another process can open once every handle here is closed or gone').toEqual({ ok: true, total: 12 });
    } finally {
      await stopAll();
    }
  }, 60_000);
});
