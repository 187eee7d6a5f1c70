// Crash safety (docs/durability.md, docs/api.md `.putMany()`):
// with durability 'relaxed' every write that returned survives the process
// being SIGKILLed; a putMany is all or nothing across a crash; recovery keeps
// one copy per id (a kill during migration or compaction neither loses nor
// duplicates a record).
//
// A child process runs a deterministic sequence of operations (puts, batches
// with repeated ids, deletes, moves, migrations under small capacities,
// compactions), printing "A <i>" after operation i returned. The test kills
// it with SIGKILL at some point, reopens the store and checks that it holds
// exactly the state after the last acknowledged operation k, or after k+1
// (the operation in flight may or may not have happened), and nothing else.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MemoryInput } from '../lib/index.js';
import { ScriptChild } from './helpers/child.js';
import { mulberry32, toFloat32 } from './helpers/random.js';
import { iterateAll, useScratch } from './helpers/store.js';

const DIMS = 4;
const IDS = 150;
const BIG_IDS = 5000;

type Op =
  | { k: 'put'; rec: MemoryInput }
  | { k: 'putMany'; recs: MemoryInput[] }
  | { k: 'delete'; id: string }
  | { k: 'move'; id: string; tier: 'hot' | 'warm' | 'cold' }
  | { k: 'migrate' }
  | { k: 'compact' }
  | { k: 'flush' };

function makeOps(seed: number, n: number, bigBatches = false): Op[] {
  const rng = mulberry32(seed);
  const rec = (i: number): MemoryInput => {
    const id = `k-${Math.floor(rng() * (bigBatches ? BIG_IDS : IDS))}`;
    return {
      id,
      content: `${id} written by op ${i} ${'ö'.repeat(Math.floor(rng() * 40))}${rng() < 0.05 ? 'x'.repeat(20_000) : ''}`,
      embedding: [rng() * 2 - 1, rng() * 2 - 1, rng() * 2 - 1, rng() * 2 - 1],
      confidence: rng(),
      activation: rng(),
      createdAt: 1_600_000_000_000 + i,
      metadata: { op: i, tags: ['a', i % 7] },
    };
  };
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng();
    if (r < 0.4) ops.push({ k: 'put', rec: rec(i) });
    else if (r < 0.6 || (bigBatches && r < 0.8)) {
      // big batches: up to 2,000 records of ~1 KB, so a kill lands inside one often
      const n = bigBatches ? 200 + Math.floor(rng() * 1800) : 1 + Math.floor(rng() * 30);
      const recs = Array.from({ length: n }, () => rec(i));
      if (bigBatches) for (const r2 of recs) r2.content += ' ' + 'ß'.repeat(500);
      ops.push({ k: 'putMany', recs });
    }
    else if (r < 0.72) ops.push({ k: 'delete', id: `k-${Math.floor(rng() * IDS)}` });
    else if (r < 0.9) ops.push({ k: 'move', id: `k-${Math.floor(rng() * IDS)}`, tier: (['hot', 'warm', 'cold'] as const)[Math.floor(rng() * 3)]! });
    else if (r < 0.96) ops.push({ k: 'migrate' });
    else if (r < 0.985) ops.push({ k: 'compact' });
    else ops.push({ k: 'flush' });
  }
  return ops;
}

/** The records (by id) after applying ops[0..upto) to `start`. */
function model(ops: Op[], upto: number, start: Map<string, MemoryInput> = new Map()): Map<string, MemoryInput> {
  const m = new Map(start);
  for (let i = 0; i < upto; i++) {
    const op = ops[i]!;
    if (op.k === 'put') m.set(op.rec.id, op.rec);
    else if (op.k === 'putMany') for (const r of op.recs) m.set(r.id, r);
    else if (op.k === 'delete') m.delete(op.id);
  }
  return m;
}

/** A canonical, comparable form of a record's data (no tier, no access statistics). */
function canonical(r: { id: string; content: string; metadata?: unknown; confidence?: number; activation?: number; createdAt?: number; embedding?: ArrayLike<number> }): string {
  const e = toFloat32(r.embedding ?? []);
  return JSON.stringify([
    r.id,
    r.content,
    r.metadata,
    Math.fround(r.confidence ?? 0.5),
    Math.fround(r.activation ?? r.confidence ?? 0.5),
    r.createdAt,
    Array.from(new Uint32Array(e.buffer, e.byteOffset, e.length)),
  ]);
}

function modelState(m: Map<string, MemoryInput>): string[] {
  return [...m.values()].map(canonical).sort();
}

const CHILD = String.raw`
  const ops = JSON.parse(fs.readFileSync(args.opsFile, 'utf8'));
  const s = ts.open(args.p, args.options);
  fs.writeSync(1, 'OPEN\n');
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    switch (op.k) {
      case 'put': s.put(op.rec); break;
      case 'putMany': s.putMany(op.recs); break;
      case 'delete': s.delete(op.id); break;
      case 'move': s.move(op.id, op.tier); break;
      case 'migrate': s.migrate(); break;
      case 'compact': s.compact(); break;
      case 'flush': s.flush(); break;
    }
    fs.writeSync(1, 'A ' + i + '\n');
  }
  fs.writeSync(1, 'DONE\n');
  setInterval(() => {}, 1 << 30); // wait to be killed, store still open
`;

describe('SIGKILL at an arbitrary point loses no returned write and tears no batch', () => {
  const scratch = useScratch();

  const RUNS: Array<{ name: string; seed: number; killAfter: number; options: Record<string, unknown>; bigBatches?: boolean }> = [
    { name: 'big batches (a kill inside a putMany)', seed: 8, killAfter: 40, bigBatches: true, options: { dimensions: DIMS, hotCapacity: 3000, warmCapacity: 5000 } },
    { name: 'big batches under small capacities', seed: 9, killAfter: 25, bigBatches: true, options: { dimensions: DIMS, hotCapacity: 500, warmCapacity: 1000 } },
    { name: 'during the first operations', seed: 1, killAfter: 3, options: { dimensions: DIMS, hotCapacity: 20, warmCapacity: 50 } },
    { name: 'mid-run, small capacities', seed: 2, killAfter: 400, options: { dimensions: DIMS, hotCapacity: 20, warmCapacity: 50 } },
    { name: 'late, small capacities', seed: 3, killAfter: 1500, options: { dimensions: DIMS, hotCapacity: 20, warmCapacity: 50 } },
    { name: 'tiny capacities (constant migration)', seed: 4, killAfter: 900, options: { dimensions: DIMS, hotCapacity: 1, warmCapacity: 3 } },
    { name: 'skipWarm', seed: 5, killAfter: 700, options: { dimensions: DIMS, hotCapacity: 10, skipWarm: true } },
    { name: "durability 'sync'", seed: 6, killAfter: 200, options: { dimensions: DIMS, hotCapacity: 15, warmCapacity: 40, durability: 'sync' } },
    { name: 'after everything returned', seed: 7, killAfter: Infinity, options: { dimensions: DIMS, hotCapacity: 20, warmCapacity: 50 } },
  ];

  it.each(RUNS)('$name', async ({ seed, killAfter, options, bigBatches }) => {
    const dir = scratch.dir();
    const p = path.join(dir, 'db');
    const ops = makeOps(seed, bigBatches ? 60 : 2000, bigBatches);
    const opsFile = path.join(dir, 'ops.json');
    fs.writeFileSync(opsFile, JSON.stringify(ops));

    // Two crashes in a row: the second run continues on the recovered store.
    const child = new ScriptChild(CHILD, { p, opsFile, options });
    const acked = (lines: string[]) => lines.filter((l) => l.startsWith('A ')).length;
    let reached = await child.waitFor((l) => l.includes('DONE') || acked(l) >= killAfter, 120_000);
    expect(reached, `child progressed: ${child.stderr}`).toBe(true);
    const exit = await child.kill('SIGKILL');
    expect(exit.code, `the child did not fail by itself: ${child.stderr}`).toBe(null);
    expect(exit.signal).toBe('SIGKILL');

    const acks = child.lines.filter((l) => l.startsWith('A ')).map((l) => Number(l.slice(2)));
    acks.forEach((a, i) => expect(a).toBe(i));
    const k = acks.length; // ops[0..k) returned; ops[k] may have been in flight

    // A read-only open of the crashed store already shows the recovered state.
    const ro = scratch.open(p, { readOnly: true });
    const roState = iterateAll(ro, 'all', true).map(canonical).sort();
    ro.close();

    const s = scratch.open(p);
    const all = iterateAll(s, 'all', true);
    const ids = all.map((m) => m.id);
    expect(ids.length, 'recovery keeps one copy per id').toBe(new Set(ids).size);
    expect(s.counts().total).toBe(all.length);
    const got = all.map(canonical).sort();
    const before = modelState(model(ops, k));
    const after = modelState(model(ops, Math.min(k + 1, ops.length)));
    const matches = JSON.stringify(got) === JSON.stringify(before) || JSON.stringify(got) === JSON.stringify(after);
    if (!matches) {
      const g = new Set(got);
      const b = new Set(before);
      const missing = before.filter((x) => !g.has(x)).map((x) => JSON.parse(x)[0] as string);
      const extra = got.filter((x) => !b.has(x)).map((x) => JSON.parse(x)[0] as string);
      expect.fail(
        `after SIGKILL with ${k} operations acknowledged (in flight: ${JSON.stringify(ops[k]?.k)}), the store is neither the state after op ${k} nor after op ${k + 1}: ` +
          `missing or different vs the acknowledged state: ${JSON.stringify(missing.slice(0, 20))}; unexpected: ${JSON.stringify(extra.slice(0, 20))}`,
      );
    }

    expect(roState, 'a read-only open right after the crash sees the same state').toEqual(got);

    // Recovery is stable: closing and reopening gives the same state, and the store works on.
    s.close();
    const s2 = scratch.open(p, { hotCapacity: 5, warmCapacity: 10 });
    expect(iterateAll(s2, 'all', true).map(canonical).sort(), 'the same state after a second reopen').toEqual(got);
    s2.migrate();
    s2.compact();
    s2.put({ id: 'after-crash', content: 'still works', embedding: [1, 2, 3, 4], createdAt: 1 });
    expect(iterateAll(s2, 'all').length).toBe(got.length + 1);
    s2.close();

    // A second crash on the recovered store.
    if (Number.isFinite(killAfter) && killAfter > 10) {
      const ops2 = makeOps(seed + 1000, 600);
      fs.writeFileSync(opsFile, JSON.stringify(ops2));
      const c2 = new ScriptChild(CHILD, { p, opsFile, options: { ...options, dimensions: undefined } });
      reached = await c2.waitFor((l) => l.includes('DONE') || acked(l) >= Math.floor(killAfter / 3), 120_000);
      expect(reached, `second child progressed: ${c2.stderr}`).toBe(true);
      await c2.kill('SIGKILL');
      const k2 = c2.lines.filter((l) => l.startsWith('A ')).length;
      const base = new Map<string, MemoryInput>();
      for (const m of iterateAll(scratch.open(p), 'all', true)) {
        base.set(m.id, { id: m.id, content: m.content, metadata: m.metadata, confidence: m.confidence, activation: m.activation, createdAt: m.createdAt, embedding: m.embedding! });
      }
      // The state after the second crash: the recovered state + 'after-crash' + ops2[0..k2 or k2+1).
      const start = new Map<string, MemoryInput>();
      for (const x of got) {
        const [id, content, metadata, confidence, activation, createdAt, bits] = JSON.parse(x) as [string, string, Record<string, unknown>, number, number, number, number[]];
        start.set(id, { id, content, metadata, confidence, activation, createdAt, embedding: new Float32Array(new Uint32Array(bits).buffer) });
      }
      start.set('after-crash', { id: 'after-crash', content: 'still works', embedding: [1, 2, 3, 4], metadata: {}, createdAt: 1 });
      const continued = (upto: number) => modelState(model(ops2, upto, start));
      const got2 = [...base.values()].map(canonical).sort();
      const ok2 = [k2, k2 + 1].some((u) => JSON.stringify(continued(Math.min(u, ops2.length))) === JSON.stringify(got2));
      expect(ok2, `after a second SIGKILL (${k2} ops acknowledged) the store holds the acknowledged state`).toBe(true);
    }
  }, 300_000);
});

describe('access statistics across a SIGKILL', () => {
  const scratch = useScratch();

  it('statistics persisted by flush() or by a migration survive the kill', async () => {
    const p = path.join(scratch.dir(), 'db');
    const child = new ScriptChild(
      String.raw`
      const s = ts.open(args.p, { dimensions: 4 });
      for (const id of ['a', 'b', 'c', 'd']) s.put({ id, content: id, embedding: [1, 2, 3, 4], createdAt: 5 });
      s.move('d', 'cold');
      for (let i = 0; i < 3; i++) s.get('a');
      for (let i = 0; i < 2; i++) s.get('b');
      for (let i = 0; i < 5; i++) s.get('d');
      s.flush(); // persists a, b and d (in cold)
      const flushed = [...s.iterate()].map((m) => [m.id, m.accessCount, m.lastAccessAt]);
      for (let i = 0; i < 4; i++) s.get('c');
      s.move('c', 'warm'); // a migration persists c
      const moved = [...s.iterate({ tier: 'warm' })].map((m) => [m.id, m.accessCount, m.lastAccessAt]);
      fs.writeSync(1, 'READY ' + JSON.stringify({ flushed, moved }) + '\n');
      setInterval(() => {}, 1 << 30);
      `,
      { p },
    );
    const ready = await child.waitFor((l) => l.some((x) => x.startsWith('READY ')), 60_000);
    expect(ready, `child got ready: ${child.stderr}`).toBe(true);
    await child.kill('SIGKILL');
    const info = JSON.parse(child.lines.find((x) => x.startsWith('READY '))!.slice('READY '.length)) as {
      flushed: Array<[string, number, number]>;
      moved: Array<[string, number, number]>;
    };
    const s = scratch.open(p);
    const now = new Map(iterateAll(s, 'all').map((m) => [m.id, [m.id, m.accessCount, m.lastAccessAt] as [string, number, number]]));
    for (const [id, count, last] of info.flushed.filter(([id]) => id !== 'c')) {
      expect(now.get(id), `${id}: statistics persisted by flush() survive`).toEqual([id, count, last]);
    }
    expect(info.flushed.find(([id]) => id === 'a')?.[1]).toBe(3);
    expect(info.flushed.find(([id]) => id === 'd')?.[1]).toBe(5);
    const c = info.moved.find(([id]) => id === 'c')!;
    expect(c[1]).toBe(4);
    expect(now.get('c'), 'c: statistics carried by its migration survive').toEqual(c);
  }, 60_000);
});

describe('a warm copy torn by a crash while the log still holds the record', () => {
  const scratch = useScratch();

  // A power cut can leave some pages of a migration unwritten. After an
  // unclean shutdown, a warm copy that fails its checksums while the hot log
  // still holds that exact version is dropped (stats().tornWarmCopies) and
  // the log's copy stands; with no such log copy it stays CORRUPTION.
  it('is dropped at open and the record comes back exactly from the log', async () => {
    const p = path.join(scratch.dir(), 'db');
    const child = new ScriptChild(
      String.raw`
      const recs = [];
      for (let i = 0; i < 12; i++) {
        recs.push({ id: 'r' + i, content: 'record ' + i + ' ' + 'ü'.repeat(i), metadata: { i },
          embedding: Array.from({ length: 8 }, (_, k) => Math.sin(i * 8 + k)) });
      }
      // Put within capacity, so the log holds them all (a put over capacity
      // writes what it demotes straight to warm), then demoted.
      const first = ts.open(args.p, { dimensions: 8 });
      first.putMany(recs);
      first.close();
      const s = ts.open(args.p, { hotCapacity: 2 });
      s.migrate(); // ten of them migrate to warm; the log keeps them all
      fs.writeSync(1, 'READY ' + JSON.stringify(s.counts()) + '\n');
      setInterval(() => {}, 1 << 30);
      `,
      { p },
    );
    const ready = await child.waitFor((l) => l.some((x) => x.startsWith('READY ')), 60_000);
    expect(ready, `child got ready: ${child.stderr}`).toBe(true);
    await child.kill('SIGKILL');
    expect(JSON.parse(child.lines.find((x) => x.startsWith('READY '))!.slice(6))).toEqual({ hot: 2, warm: 10, cold: 0, total: 12 });
    // Slot 0's embedding (a 4096-byte header page, then blocks whose
    // embedding starts at byte 64 in block format version 3) as if its page
    // never reached the disk.
    const blocks = path.join(p, 'warm.blocks');
    const fd = fs.openSync(blocks, 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, 4096 + 64 + 3);
    byte[0] ^= 0xff;
    fs.writeSync(fd, byte, 0, 1, 4096 + 64 + 3);
    fs.closeSync(fd);

    const s = scratch.open(p);
    expect(s.stats().tornWarmCopies).toBe(1);
    expect(s.counts()).toEqual({ hot: 3, warm: 9, cold: 0, total: 12 });
    for (let i = 0; i < 12; i++) {
      const m = s.get('r' + i, { includeEmbedding: true })!;
      expect(m.content).toBe('record ' + i + ' ' + 'ü'.repeat(i));
      expect(m.metadata).toEqual({ i });
      expect(Array.from(m.embedding!)).toEqual(Array.from({ length: 8 }, (_, k) => Math.fround(Math.sin(i * 8 + k))));
    }
  }, 60_000);
});
