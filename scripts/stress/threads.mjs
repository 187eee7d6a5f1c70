#!/usr/bin/env node
// Worker-thread stress run (docs/durability.md): one store opened from several
// worker threads of this process (one shared native store, reference
// counted), each thread running a random mix of put / putMany / get / has /
// delete / move / migrate / iterate (sync, async, per tier, batches) / list /
// recall / recallAsync / counts / flush / compact and closing and reopening
// its own handle, for a bounded time. Meanwhile the main thread:
// - terminates a worker in the middle of a heavy call (a big putMany, a sync
//   or async iteration, a burst of recallAsync, migrate + compact) and starts
//   a replacement in a fresh id space;
// - checks that another process gets STORE_LOCKED while any thread holds the
//   store, also after the main thread closed its own handle;
// - at the end, after every handle is closed or its thread is gone, checks
//   that another process can open the store (terminated threads released
//   their references), then reopens it and verifies everything.
//
// What is checked (each violation is a finding):
// - every thread's reads of its own id space are exact (get/has/delete/move
//   answer from the thread's own acknowledged writes), every record read
//   anywhere is internally consistent (content, scalars, embedding derived
//   from (id, writer, version) stored in its metadata), stable records are
//   yielded exactly once by every 'all' iteration and found first by recall
//   of their own embedding;
// - at the end: no acknowledged write lost, no acknowledged delete undone,
//   each id once, counts() equal to the iterated totals per tier, and for the
//   shared id space the value is a last write (no acknowledged write started
//   after the stored one ended, using a global ticket counter); a write in
//   flight when its thread was terminated is all there or not at all.
// Acknowledgements live in a SharedArrayBuffer, written right after each call
// returns, so they survive worker.terminate().
//
//   node scripts/stress/threads.mjs --seconds 300 [--workers 4] [--seed 1]
//       [--terminations N] [--heavy putMany,iterate-async,recallAsync,iterate-sync,migrate-compact]
//       [--package DIR (default: this repository)] [--keep] [--quiet] [--inject-faults]
//
// --terminations defaults to max(number of heavy kinds, seconds / 6), spread
// over 8%..70% of the run; --heavy picks the calls a victim is terminated in.
// --operations N measures the run in operations instead of seconds: it ends
// once the workers have completed N calls, and the terminations and the main
// handle's close fall at the same fractions of N (the same work however busy
// the machine is; the tests use it).
//
// The last line of stdout is
//   SUMMARY {"name":"threads","operations":n,"findings":[...],"seconds":s,...}
// and the exit status is 1 when there are findings. Loads the built package
// (dist/, `npm run build:ts`) through the repository root.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { mulberry32 } from './common.mjs';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The package (its root, or its dist/index.js) loaded like a dependency. */
function loadTierstore(root) {
  const require = createRequire(path.join(REPO_ROOT, 'package.json'));
  const api = require(root);
  if (typeof api.open !== 'function') throw new Error(`no open() exported by ${root} (run npm run build:ts)`);
  return api;
}

// ---------------------------------------------------------------------------
// Layout and record derivation (shared by the main thread and the workers)

const DIMS = 16;
const STABLE = 400; // written once by the main thread, never changed
const OWN_ACTIVE = 400; // ids a worker's normal ops touch: w<slot>-0 .. 399
const OWN_BIG = 1200; // ids of its big putMany: w<slot>-400 .. 1599
const OWN = OWN_ACTIVE + OWN_BIG;
const SHARED = 48; // shared-0 .. 47, written by every worker (never deleted)
const MAX_FINDINGS = 60;

// ctl (Int32Array) indexes
const TICKET = 0;
const STOP = 1;
const SLOT_BASE = 8;
const SLOT_WORDS = 8;
const F_OPS = 0;
const F_IN_CALL = 1; // 0 before a heavy call, 1 in it, 2 after it (waiting to be terminated)
const F_CMD = 2;
const F_CLOSES = 3;
const F_ITERATIONS = 4;
const F_RECALLS = 5;
const F_DONE = 6; // the worker closed its handle and is about to exit
const F_CURRENT = 7; // (op index + 1) << 20 | seconds since the run started, while a call runs; 0 between calls
const STALL_SECONDS = 60; // a call running longer than this is reported

const HEAVY_KINDS = ['putMany', 'iterate-async', 'recallAsync', 'iterate-sync', 'migrate-compact'];
// The workers' random operations, in the order of their table (for stall reports).
const OP_NAMES = ['put', 'putMany', 'put shared', 'get own', 'get stable', 'get shared', 'has', 'delete', 'move', 'migrate',
  'iterate sync all', 'iterate async all', 'iterate one tier', 'batches all', 'list', 'recall', 'recallAsync', 'recall/recallAsync of a tier',
  'counts', 'flush', 'compact', 'close and reopen'];

function makeShared(maxSlots) {
  return {
    ctl: new SharedArrayBuffer(4 * (SLOT_BASE + SLOT_WORDS * maxSlots)),
    // own ids: state 0 = never written, v > 0 = put of version v, v < 0 = deleted (version -v)
    ownAcked: new SharedArrayBuffer(4 * OWN * maxSlots),
    ownStarted: new SharedArrayBuffer(4 * OWN * maxSlots),
    // shared ids, per (id, writer slot): last acked write number and its tickets; last started write number
    shAckedN: new SharedArrayBuffer(4 * SHARED * maxSlots),
    shAckedStart: new SharedArrayBuffer(4 * SHARED * maxSlots),
    shAckedEnd: new SharedArrayBuffer(4 * SHARED * maxSlots),
    shStartedN: new SharedArrayBuffer(4 * SHARED * maxSlots),
  };
}

function views(shared) {
  const v = {};
  for (const [k, buf] of Object.entries(shared)) v[k] = new Int32Array(buf);
  return v;
}

function hashString(s, h = 0x811c9dc5) {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function mix(...parts) {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (Number(p) >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
  }
  return h >>> 0;
}

/** FNV-1a over the float32 bit patterns of an embedding. */
function embeddingHash(e) {
  const bits = new Uint32Array(e.buffer, e.byteOffset, e.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i], 0x01000193) >>> 0;
  return h;
}

/** A hash of what a record holds besides its embedding (content, scalars). */
function dataHash(content, confidence, createdAt) {
  return hashString(`${content}\u0000${confidence}\u0000${createdAt}`);
}

const FILLER = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 éßñЖ€日本🚀';
const FILLER_CHARS = [...FILLER];

/**
 * The record `writer` (a slot, or -1 for the main thread) writes as `version`
 * of `id`. Its metadata carries (writer, version) and hashes of its data and
 * embedding, so any record read back can be checked on its own.
 */
function recordOf(id, writer, version) {
  const seed = mix(hashString(id), writer + 2, version);
  const rng = mulberry32(seed);
  const embedding = new Float32Array(DIMS);
  for (let i = 0; i < DIMS; i++) embedding[i] = rng() * 2 - 1;
  const len = rng() < 0.04 ? 1000 + Math.floor(rng() * 3000) : Math.floor(rng() * 120);
  let filler = '';
  for (let i = 0; i < len; i++) filler += FILLER_CHARS[Math.floor(rng() * FILLER_CHARS.length)];
  const content = `${id}|${writer}|${version}|${filler}`;
  const confidence = Math.fround((seed % 101) / 100);
  const createdAt = 1_700_000_000_000 + (seed % 1_000_000);
  return {
    id,
    content,
    embedding,
    confidence,
    createdAt,
    metadata: { w: writer, v: version, hd: dataHash(content, confidence, createdAt), he: embeddingHash(embedding) },
  };
}

/** Checks a memory read from the store against the write its metadata names; returns a problem or ''. */
function integrityProblem(m, withEmbedding) {
  const meta = m && m.metadata;
  if (!meta || typeof meta.w !== 'number' || typeof meta.v !== 'number') return `${m && m.id}: metadata ${JSON.stringify(meta)} names no write`;
  if (!m.content.startsWith(`${m.id}|${meta.w}|${meta.v}|`)) return `${m.id}: content ${JSON.stringify(m.content.slice(0, 40))} is not write (${meta.w}, ${meta.v}) of this id`;
  if (dataHash(m.content, m.confidence, m.createdAt) !== meta.hd) return `${m.id}: content, confidence or createdAt differ from write (${meta.w}, ${meta.v})`;
  if (m.activation !== m.confidence) return `${m.id}: activation ${m.activation} != confidence ${m.confidence}`;
  if (!['hot', 'warm', 'cold'].includes(m.tier)) return `${m.id}: tier ${m.tier}`;
  if (withEmbedding) {
    const e = m.embedding;
    if (!(e instanceof Float32Array) || e.length !== DIMS) return `${m.id}: embedding missing or of length ${e && e.length}`;
    if (embeddingHash(e) !== meta.he) return `${m.id}: embedding differs from write (${meta.w}, ${meta.v})`;
  } else if (m.embedding !== undefined) {
    return `${m.id}: embedding present though not asked for`;
  }
  return '';
}

const stableId = (k) => `stable-${k}`;
const ownId = (slot, k) => `w${slot}-${k}`;
const sharedId = (k) => `shared-${k}`;

function parseId(id) {
  let m = /^stable-(\d+)$/.exec(id);
  if (m) return { kind: 'stable', k: Number(m[1]) };
  m = /^w(\d+)-(\d+)$/.exec(id);
  if (m) return { kind: 'own', slot: Number(m[1]), k: Number(m[2]) };
  m = /^shared-(\d+)$/.exec(id);
  if (m) return { kind: 'shared', k: Number(m[1]) };
  return { kind: 'unknown' };
}

function describeError(e) {
  return `${e && e.constructor && e.constructor.name}${e && e.code ? ` ${e.code}` : ''}: ${String(e && e.message).slice(0, 200)}`;
}

// ---------------------------------------------------------------------------
// Worker

async function workerMain() {
  const { storePath, slot, seed, options, shared, maxSlots, packageRoot, startedAt } = workerData;
  const v = views(shared);
  const base = SLOT_BASE + SLOT_WORDS * slot;
  const rng = mulberry32(seed);
  const ts = loadTierstore(packageRoot);
  let findings = 0;
  const finding = (msg) => {
    if (findings++ < 20) parentPort.postMessage({ finding: `worker ${slot}: ${msg}` });
  };
  const ownBase = slot * OWN;
  const state = (k) => v.ownAcked[ownBase + k];
  const present = (k) => state(k) > 0;
  const ticket = () => Atomics.add(v.ctl, TICKET, 1);
  const randInt = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));

  let store = ts.open(storePath, options);
  parentPort.postMessage({ ready: true });

  const expectOwn = (k, m, where) => {
    const s = state(k);
    if (s > 0) {
      if (!m) return finding(`${where}: ${ownId(slot, k)} (acked version ${s}) is missing`);
      if (m.metadata.v !== s || m.metadata.w !== slot) return finding(`${where}: ${ownId(slot, k)} is version ${m.metadata.v} by ${m.metadata.w}, acked ${s}`);
      const p = integrityProblem(m, m.embedding !== undefined);
      if (p) finding(`${where}: ${p}`);
    } else if (m) {
      finding(`${where}: ${ownId(slot, k)} exists (version ${m.metadata && m.metadata.v}) though its acked state is ${s}`);
    }
  };

  /** Own-id writes: marks started, calls, marks acked. */
  const writeOwn = (ks, next, call) => {
    for (let i = 0; i < ks.length; i++) Atomics.store(v.ownStarted, ownBase + ks[i], next[i]);
    const r = call();
    for (let i = 0; i < ks.length; i++) Atomics.store(v.ownAcked, ownBase + ks[i], next[i]);
    return r;
  };

  const putBatch = (ownKs, sharedKs) => {
    const next = ownKs.map((k) => Math.abs(state(k)) + 1);
    const recs = ownKs.map((k, i) => recordOf(ownId(slot, k), slot, next[i]));
    const sharedNs = sharedKs.map((k) => v.shStartedN[k * maxSlots + slot] + 1);
    for (let i = 0; i < sharedKs.length; i++) recs.push(recordOf(sharedId(sharedKs[i]), slot, sharedNs[i]));
    for (let i = 0; i < sharedKs.length; i++) Atomics.store(v.shStartedN, sharedKs[i] * maxSlots + slot, sharedNs[i]);
    const start = ticket();
    writeOwn(ownKs, next, () => (recs.length === 1 && rng() < 0.5 ? store.put(recs[0]) : store.putMany(rng() < 0.2 ? new Set(recs) : recs)));
    const end = ticket();
    for (let i = 0; i < sharedKs.length; i++) {
      const at = sharedKs[i] * maxSlots + slot;
      Atomics.store(v.shAckedStart, at, start);
      Atomics.store(v.shAckedEnd, at, end);
      Atomics.store(v.shAckedN, at, sharedNs[i]);
    }
  };

  const distinct = (n, range) => {
    const s = new Set();
    while (s.size < n) s.add(Math.floor(rng() * range));
    return [...s];
  };

  const iterateAll = async (mode, tier, withEmbedding) => {
    const counts = new Map();
    const see = (m) => {
      counts.set(m.id, (counts.get(m.id) || 0) + 1);
      const p = integrityProblem(m, withEmbedding);
      if (p) finding(`iterate(${mode}, ${tier}): ${p}`);
      if (tier !== 'all' && m.tier !== tier) finding(`iterate(${tier}) yielded ${m.id} labelled ${m.tier}`);
    };
    const it = store.iterate({ tier, includeEmbeddings: withEmbedding, batchSize: randInt(1, 300) });
    if (mode === 'sync') for (const m of it) see(m);
    else if (mode === 'async') for await (const m of it) see(m);
    else {
      for (const b of it.batches()) {
        for (let i = 0; i < b.ids.length; i++) {
          see({
            id: b.ids[i], content: b.contents[i], metadata: b.metadata[i], confidence: b.confidence[i], activation: b.activation[i],
            createdAt: b.createdAt[i], tier: b.tiers[i], embedding: withEmbedding ? b.embeddings.subarray(i * DIMS, (i + 1) * DIMS) : undefined,
          });
        }
      }
    }
    Atomics.add(v.ctl, base + F_ITERATIONS, 1);
    // Exactly once in 'all' for what is unchanged during the iteration (stable
    // records, this thread's own ids); at most once within one tier.
    for (let k = 0; k < STABLE; k++) {
      const c = counts.get(stableId(k)) || 0;
      if (tier === 'all' ? c !== 1 : c > 1) finding(`iterate(${mode}, ${tier}) yielded ${stableId(k)} ${c} times`);
    }
    for (let k = 0; k < OWN; k++) {
      const c = counts.get(ownId(slot, k)) || 0;
      if (tier === 'all' ? c !== (present(k) ? 1 : 0) : c > 1) finding(`iterate(${mode}, ${tier}) yielded ${ownId(slot, k)} ${c} times (acked state ${state(k)})`);
    }
  };

  const checkHits = (hits, k, where, probe) => {
    if (!Array.isArray(hits) || hits.length > k) return finding(`${where}: ${hits && hits.length} hits for k ${k}`);
    for (let i = 0; i < hits.length; i++) {
      const h = hits[i];
      if (!Number.isFinite(h.score) || h.score > 1.0001 || h.score < -1.0001) finding(`${where}: score ${h.score}`);
      if (i > 0 && (hits[i - 1].score < h.score || (hits[i - 1].score === h.score && Buffer.compare(Buffer.from(hits[i - 1].id), Buffer.from(h.id)) > 0))) {
        finding(`${where}: hits out of order at ${i}`);
      }
      const p = integrityProblem(h.memory, false);
      if (p) finding(`${where}: ${p}`);
    }
    if (probe !== undefined && hits.length > 0 && hits[0].id !== probe && !(hits[0].score >= 0.99999)) {
      finding(`${where}: recall of ${probe}'s own embedding ranked ${hits[0].id} (${hits[0].score}) first`);
    }
    Atomics.add(v.ctl, base + F_RECALLS, 1);
  };

  const ops = [
    [20, () => putBatch([randInt(0, OWN_ACTIVE - 1)], [])],
    [10, () => putBatch(distinct(randInt(1, 40), OWN_ACTIVE), rng() < 0.5 ? distinct(randInt(1, 6), SHARED) : [])],
    [8, () => putBatch([], [randInt(0, SHARED - 1)])],
    [12, () => {
      const k = randInt(0, OWN_ACTIVE - 1);
      expectOwn(k, store.get(ownId(slot, k), { includeEmbedding: rng() < 0.3 }), 'get');
    }],
    [4, () => {
      const k = randInt(0, STABLE - 1);
      const m = store.get(stableId(k), { includeEmbedding: true });
      if (!m) return finding(`get: ${stableId(k)} missing`);
      const p = integrityProblem(m, true);
      if (p) finding(`get: ${p}`);
    }],
    [3, () => {
      const m = store.get(sharedId(randInt(0, SHARED - 1)));
      if (m) {
        const p = integrityProblem(m, false);
        if (p) finding(`get shared: ${p}`);
      }
    }],
    [5, () => {
      const k = randInt(0, OWN_ACTIVE - 1);
      if (store.has(ownId(slot, k)) !== present(k)) finding(`has(${ownId(slot, k)}) != acked state ${state(k)}`);
    }],
    [6, () => {
      const k = randInt(0, OWN_ACTIVE - 1);
      const was = present(k);
      const next = was ? -(state(k) + 1) : state(k);
      const existed = writeOwn([k], [next], () => store.delete(ownId(slot, k)));
      if (existed !== was) finding(`delete(${ownId(slot, k)}) returned ${existed}, acked state said ${was}`);
    }],
    [5, () => {
      const k = randInt(0, OWN_ACTIVE - 1);
      const tier = ['hot', 'warm', 'cold'][randInt(0, 2)];
      const found = store.move(ownId(slot, k), tier);
      if (found !== present(k)) finding(`move(${ownId(slot, k)}) returned ${found}, acked state ${state(k)}`);
    }],
    [2, () => store.migrate()],
    [1, () => iterateAll('sync', 'all', rng() < 0.3)],
    [1, () => iterateAll('async', 'all', rng() < 0.3)],
    [1, () => iterateAll(['sync', 'async', 'batches'][randInt(0, 2)], ['hot', 'warm', 'cold'][randInt(0, 2)], rng() < 0.3)],
    [1, () => iterateAll('batches', 'all', rng() < 0.5)],
    [1, () => {
      const tier = ['hot', 'warm', 'cold', 'all'][randInt(0, 3)];
      let cursor;
      for (let page = 0; page < 20; page++) {
        const res = cursor === undefined ? store.list({ tier, limit: randInt(1, 200) }) : store.list({ tier, cursor, limit: randInt(1, 200) });
        if (res.count !== res.memories.length) finding(`list: count ${res.count} != ${res.memories.length}`);
        for (const m of res.memories) {
          const p = integrityProblem(m, false);
          if (p) finding(`list(${tier}): ${p}`);
        }
        cursor = res.pagination.nextCursor;
        if (cursor === undefined) break;
      }
    }],
    [4, () => {
      const probe = randInt(0, STABLE - 1);
      const k = randInt(1, 20);
      checkHits(store.recall(recordOf(stableId(probe), -1, 1).embedding, { k }), k, 'recall', stableId(probe));
    }],
    [4, async () => {
      const probe = randInt(0, STABLE - 1);
      const k = randInt(1, 20);
      checkHits(await store.recallAsync(recordOf(stableId(probe), -1, 1).embedding, { k }), k, 'recallAsync', stableId(probe));
    }],
    [1, async () => {
      const tier = ['hot', 'warm', 'cold'][randInt(0, 2)];
      const q = recordOf('query', slot, randInt(0, 1e6)).embedding;
      checkHits(store.recall(q, { k: 10, tier }), 10, `recall(${tier})`);
      checkHits(await store.recallAsync(q, { k: 10, tier, minConfidence: 0.5 }), 10, `recallAsync(${tier})`);
    }],
    [2, () => {
      const c = store.counts();
      if (c.total !== c.hot + c.warm + c.cold || c.total < STABLE) finding(`counts ${JSON.stringify(c)}`);
    }],
    [0.5, () => store.flush()],
    [0.1, () => store.compact()],
    [0.3, () => {
      // Close this thread's handle: the others must not notice. Then reopen.
      store.close();
      Atomics.add(v.ctl, base + F_CLOSES, 1);
      try {
        store.counts();
        finding('a closed handle still answered counts()');
      } catch (e) {
        if (e.code !== 'STORE_CLOSED') finding(`closed handle: ${describeError(e)}`);
      }
      store = ts.open(storePath, { ...options, hotCapacity: randInt(50, 400) });
    }],
  ];
  const totalWeight = ops.reduce((a, [w]) => a + w, 0);
  const pickOp = () => {
    let r = rng() * totalWeight;
    for (let i = 0; i < ops.length; i++) if ((r -= ops[i][0]) < 0) return i;
    return 0;
  };
  const seconds = () => Math.floor((Date.now() - startedAt) / 1000);

  const heavy = async (kind) => {
    Atomics.store(v.ctl, base + F_IN_CALL, 1);
    if (kind === 'putMany') {
      const ks = Array.from({ length: OWN_BIG }, (_, i) => OWN_ACTIVE + i);
      const next = ks.map((k) => Math.abs(state(k)) + 1);
      const recs = ks.map((k, i) => recordOf(ownId(slot, k), slot, next[i]));
      writeOwn(ks, next, () => store.putMany(recs));
    } else if (kind === 'iterate-async') {
      for await (const m of store.iterate({ includeEmbeddings: true, batchSize: 8 })) void m;
    } else if (kind === 'recallAsync') {
      const q = recordOf(stableId(0), -1, 1).embedding;
      await Promise.all(Array.from({ length: 16 }, () => store.recallAsync(q, { k: 200, includeEmbeddings: true })));
    } else if (kind === 'iterate-sync') {
      for (const m of store.iterate({ includeEmbeddings: true, batchSize: 4 })) void m;
    } else {
      store.migrate();
      store.compact();
    }
    // 2, not 0: a call that ends before the main thread looked must still
    // count as started, or the main thread waits for a start that happened.
    Atomics.store(v.ctl, base + F_IN_CALL, 2);
    // The main thread terminates this worker next: wait for it outside any call.
    while (Atomics.load(v.ctl, STOP) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  };

  const closeAndReopen = ops[ops.length - 1][1];
  let n = 0;
  while (Atomics.load(v.ctl, STOP) === 0) {
    const cmd = Atomics.exchange(v.ctl, base + F_CMD, 0);
    try {
      if (cmd !== 0) {
        Atomics.store(v.ctl, base + F_CURRENT, ((ops.length + cmd) << 20) | seconds());
        await heavy(HEAVY_KINDS[cmd - 1]);
      } else if (++n === 50) {
        closeAndReopen(); // at least once per worker; more at random
      } else {
        const i = pickOp();
        Atomics.store(v.ctl, base + F_CURRENT, ((i + 1) << 20) | seconds());
        await ops[i][1]();
      }
      Atomics.store(v.ctl, base + F_CURRENT, 0);
    } catch (e) {
      finding(`unexpected error: ${describeError(e)}\n${e && e.stack}`);
    }
    Atomics.add(v.ctl, base + F_OPS, 1);
  }
  store.close();
  Atomics.store(v.ctl, base + F_DONE, 1);
  parentPort.postMessage({ done: true });
}

// ---------------------------------------------------------------------------
// Main thread

function parseArgs(argv) {
  const args = { seconds: 60, operations: 0, workers: 4, seed: 1, terminations: -1, heavy: HEAVY_KINDS.join(','), package: REPO_ROOT, keep: false, quiet: false, 'inject-faults': false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const key = a.slice(2);
    if (typeof args[key] === 'boolean') args[key] = true;
    else if (a.startsWith('--') && typeof args[key] === 'string') args[key] = argv[++i];
    else if (a.startsWith('--') && typeof args[key] === 'number') args[key] = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  args.heavyKinds = args.heavy.split(',').map((k) => HEAVY_KINDS.indexOf(k.trim()));
  if (args.heavyKinds.some((k) => k < 0)) throw new Error(`--heavy: kinds are ${HEAVY_KINDS.join(', ')}`);
  args.package = path.resolve(args.package);
  if (args.terminations < 0) args.terminations = Math.max(args.heavyKinds.length, Math.round(args.seconds / 6));
  return args;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tries to open the store from another process: 'ok:<total>' or the error code. */
function openFromOtherProcess(packageRoot, storePath) {
  const script = `const ts = require(${JSON.stringify(packageRoot)});
    try { const s = ts.open(${JSON.stringify(storePath)}); const n = s.counts().total; s.close(); console.log('ok:' + n); }
    catch (e) { console.log(e.code || String(e)); }`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 ? r.stdout.trim() : `child failed: status ${r.status} signal ${r.signal} ${r.stderr.slice(-500)}`;
}

/** Checks the whole store against the acknowledged writes; pushes findings. Returns the iterated total. */
function verify(store, v, maxSlots, usedSlots, terminatedSlots, where, finding) {
  const perTier = { hot: 0, warm: 0, cold: 0 };
  const seen = new Map();
  for (const m of store.iterate({ includeEmbeddings: true, batchSize: 1000 })) {
    perTier[m.tier]++;
    if (seen.has(m.id)) finding(`${where}: ${m.id} yielded twice`);
    seen.set(m.id, m);
    const p = integrityProblem(m, true);
    if (p) finding(`${where}: ${p}`);
  }
  const c = store.counts();
  for (const t of ['hot', 'warm', 'cold']) {
    if (c[t] !== perTier[t]) finding(`${where}: counts().${t} ${c[t]} but ${perTier[t]} iterated`);
  }
  if (c.total !== seen.size) finding(`${where}: counts().total ${c.total} but ${seen.size} iterated`);
  for (const id of seen.keys()) {
    const p = parseId(id);
    if (p.kind === 'unknown' || (p.kind === 'own' && !usedSlots.has(p.slot))) finding(`${where}: unexpected id ${id}`);
  }
  for (let k = 0; k < STABLE; k++) if (!seen.has(stableId(k))) finding(`${where}: ${stableId(k)} lost`);
  const matches = (m, s) => (s > 0 ? !!m && m.metadata.v === s : !m);
  for (const slot of usedSlots) {
    let inFlightAtStarted = 0;
    let inFlightAtAcked = 0;
    for (let k = 0; k < OWN; k++) {
      const acked = v.ownAcked[slot * OWN + k];
      const started = v.ownStarted[slot * OWN + k];
      const m = seen.get(ownId(slot, k));
      if (m && m.metadata.w !== slot) finding(`${where}: ${ownId(slot, k)} written by ${m.metadata.w}`);
      if (matches(m, acked)) {
        if (started !== acked) inFlightAtAcked++;
        continue;
      }
      if (started !== acked && matches(m, started)) {
        inFlightAtStarted++;
        continue;
      }
      finding(`${where}: ${ownId(slot, k)} is ${m ? `version ${m.metadata.v}` : 'absent'}, acked state ${acked}${started !== acked ? `, in flight ${started}` : ''}${acked > 0 ? ' (acknowledged write lost)' : acked < 0 ? ' (acknowledged delete undone)' : ''}`);
    }
    if (!terminatedSlots.has(slot) && inFlightAtStarted + inFlightAtAcked > 0) finding(`${where}: worker ${slot} stopped normally but has writes in flight`);
    if (inFlightAtStarted > 0 && inFlightAtAcked > 0) finding(`${where}: worker ${slot}'s last batch landed in part: ${inFlightAtStarted} records written, ${inFlightAtAcked} not (putMany must be atomic)`);
  }
  for (let k = 0; k < SHARED; k++) {
    const m = seen.get(sharedId(k));
    let anyAcked = false;
    for (const slot of usedSlots) if (v.shAckedN[k * maxSlots + slot] > 0) anyAcked = true;
    if (!m) {
      if (anyAcked) finding(`${where}: ${sharedId(k)} lost (it had acknowledged writes)`);
      continue;
    }
    const w = m.metadata.w;
    const n = m.metadata.v;
    const at = k * maxSlots + w;
    if (!usedSlots.has(w)) {
      finding(`${where}: ${sharedId(k)} written by unknown worker ${w}`);
      continue;
    }
    const ackedN = v.shAckedN[at];
    const startedN = v.shStartedN[at];
    if (n === ackedN) {
      // An acknowledged write is the final value only if no acknowledged write started after it ended.
      const end = v.shAckedEnd[at];
      for (const other of usedSlots) {
        const o = k * maxSlots + other;
        if (other !== w && v.shAckedN[o] > 0 && v.shAckedStart[o] > end) {
          finding(`${where}: ${sharedId(k)} holds worker ${w}'s write #${n} (ended at ticket ${end}) but worker ${other}'s write #${v.shAckedN[o]} started later (ticket ${v.shAckedStart[o]}) and was acknowledged`);
        }
      }
    } else if (!(n === startedN && startedN > ackedN && terminatedSlots.has(w))) {
      finding(`${where}: ${sharedId(k)} holds worker ${w}'s write #${n}, but its last acknowledged write is #${ackedN} (started #${startedN})`);
    }
  }
  return seen.size;
}

/**
 * --inject-faults (a check of the checker): before the final verification,
 * damage the store the way a bug would — lose an acknowledged write, undo an
 * acknowledged delete, bring back a superseded shared write, add an id
 * nobody wrote, alter a record's content — each of which verify() must report.
 */
function injectFaults(store, v, maxSlots, usedSlots, terminatedSlots, log) {
  const normal = [...usedSlots].filter((s) => !terminatedSlots.has(s));
  const done = [];
  outer: for (const slot of normal) {
    for (let k = 0; k < OWN_ACTIVE; k++) {
      if (v.ownAcked[slot * OWN + k] > 0) {
        store.delete(ownId(slot, k));
        done.push(`lost ${ownId(slot, k)}`);
        break outer;
      }
    }
  }
  outer2: for (const slot of normal) {
    for (let k = 0; k < OWN_ACTIVE; k++) {
      const acked = v.ownAcked[slot * OWN + k];
      if (acked < -1) {
        store.put(recordOf(ownId(slot, k), slot, -acked - 1));
        done.push(`undeleted ${ownId(slot, k)}`);
        break outer2;
      }
    }
  }
  outer3: for (let k = 0; k < SHARED; k++) {
    for (const slot of normal) {
      const n = v.shAckedN[k * maxSlots + slot];
      if (n >= 2) {
        store.put(recordOf(sharedId(k), slot, n - 1));
        done.push(`superseded ${sharedId(k)}`);
        break outer3;
      }
    }
  }
  outer4: for (let k = SHARED - 1; k >= 0; k--) {
    for (const a of normal) {
      for (const b of normal) {
        const at = k * maxSlots + a;
        if (a !== b && v.shAckedN[at] > 0 && v.shAckedN[k * maxSlots + b] > 0 && v.shAckedEnd[at] < v.shAckedStart[k * maxSlots + b]) {
          // a's last write to it ended before b's last write started: a's cannot be the final value
          store.put(recordOf(sharedId(k), a, v.shAckedN[at]));
          done.push(`older writer on ${sharedId(k)}`);
          break outer4;
        }
      }
    }
  }
  store.put(recordOf('intruder-1', 0, 1));
  store.put({ ...recordOf(stableId(0), -1, 1), content: `${stableId(0)}|-1|1|tampered` });
  done.push('intruder-1', `tampered ${stableId(0)}`);
  log(`injected faults: ${done.join(', ')}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const findings = [];
  const finding = (msg) => {
    if (findings.length < MAX_FINDINGS) findings.push(msg);
    else if (findings.length === MAX_FINDINGS) findings.push('… more findings omitted');
  };
  const log = (msg) => {
    if (!args.quiet) process.stdout.write(`threads: ${msg}\n`);
  };
  const ts = loadTierstore(args.package);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-threads-'));
  const storePath = path.join(dir, 'db');
  const maxSlots = args.workers + args.terminations + 1;
  const shared = makeShared(maxSlots);
  const v = views(shared);
  const rng = mulberry32(args.seed);
  const usedSlots = new Set();
  const terminatedSlots = new Set();
  const stats = { terminations: 0, terminatedInCall: 0, terminatedBy: {}, mainClosedWhileWorkersRan: false, lockedWhileWorkersHeld: 0, workerErrors: 0 };
  let operations = 0;
  let finalRecords = 0;

  // The main thread's handle, with stable records spread over every tier.
  let main = ts.open(storePath, { dimensions: DIMS, hotCapacity: 200, warmCapacity: 1000 });
  main.putMany(Array.from({ length: STABLE }, (_, k) => recordOf(stableId(k), -1, 1)));
  for (let k = 0; k < STABLE; k++) if (k % 3 !== 0) main.move(stableId(k), k % 3 === 1 ? 'warm' : 'cold');
  const checkMainHandle = (where) => {
    const k = Math.floor(rng() * STABLE);
    const m = main.get(stableId(k), { includeEmbedding: true });
    const p = m ? integrityProblem(m, true) : `${stableId(k)} missing`;
    if (p) finding(`main thread, ${where}: ${p}`);
    if (main.counts().total < STABLE) finding(`main thread, ${where}: counts below the stable records`);
  };

  const live = new Map(); // slot -> { worker, exited }
  const stalled = new Set();
  /** What a worker is doing now, from its F_CURRENT word. */
  const currentCall = (slot) => {
    const cur = Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * slot + F_CURRENT);
    if (cur === 0) return 'between calls';
    const op = (cur >>> 20) - 1;
    const name = op < OP_NAMES.length ? OP_NAMES[op] : `heavy ${HEAVY_KINDS[op - OP_NAMES.length]}`;
    return `in ${name} for ${Math.round((Date.now() - started) / 1000 - (cur & 0xfffff))} s`;
  };
  let nextSlot = 0;
  const startWorker = async () => {
    const slot = nextSlot++;
    usedSlots.add(slot);
    const options = { hotCapacity: 50 + Math.floor(rng() * 350), warmCapacity: 300 + Math.floor(rng() * 1500), skipWarm: slot % 5 === 3, durability: slot % 4 === 2 ? 'sync' : 'relaxed' };
    const worker = new Worker(new URL(import.meta.url), { workerData: { storePath, slot, seed: args.seed * 1000 + slot, options, shared, maxSlots, packageRoot: args.package, startedAt: started } });
    const entry = { worker, slot, ready: null, exited: null };
    entry.ready = new Promise((resolve) => {
      worker.on('message', (msg) => {
        if (msg.finding) finding(msg.finding);
        if (msg.ready) resolve(true);
      });
      worker.on('error', (e) => {
        stats.workerErrors++;
        finding(`worker ${slot} died: ${describeError(e)}`);
        resolve(false);
      });
    });
    entry.exited = new Promise((resolve) => worker.on('exit', resolve));
    live.set(slot, entry);
    await entry.ready;
    return entry;
  };

  try {
    const other = openFromOtherProcess(args.package, storePath);
    if (other !== 'STORE_LOCKED') finding(`another process opening the store held by this one got ${other}, not STORE_LOCKED`);
    for (let i = 0; i < args.workers; i++) await startWorker();
    log(`${args.workers} workers on ${storePath}; ${args.seconds}s, ${args.terminations} terminations mid-call`);

    const runMs = args.seconds * 1000;
    // How far the run is, 0..1: by operations completed, or by time.
    const operationsDone = () => {
      let ops = 0;
      for (const slot of usedSlots) ops += Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * slot + F_OPS);
      return ops;
    };
    const progress = () => (args.operations > 0 ? operationsDone() / args.operations : (Date.now() - started) / runMs);
    const terminateAt = Array.from({ length: args.terminations }, (_, i) => 0.08 + (0.62 * (i + 0.5)) / args.terminations);
    const closeMainAt = 0.75;
    let lastLog = Date.now();
    // Every planned termination and the main handle's close happen, also
    // when the workers finish their operations faster than this loop looks.
    while (progress() < 1 || terminateAt.length > 0 || main !== undefined) {
      await sleep(50);
      if (main !== undefined) checkMainHandle('during the run');
      if (terminateAt.length > 0 && progress() >= terminateAt[0]) {
        terminateAt.shift();
        // A victim: told to start a heavy call, terminated once it is in it (after 0-20 ms more).
        const victims = [...live.values()];
        const victim = victims[Math.floor(rng() * victims.length)];
        const kind = args.heavyKinds[stats.terminations % args.heavyKinds.length];
        const base = SLOT_BASE + SLOT_WORDS * victim.slot;
        Atomics.store(v.ctl, base + F_CMD, kind + 1);
        const waitUntil = Date.now() + 60_000;
        while (Atomics.load(v.ctl, base + F_IN_CALL) === 0 && Date.now() < waitUntil) await new Promise((resolve) => setImmediate(resolve));
        if (Atomics.load(v.ctl, base + F_IN_CALL) === 0) finding(`worker ${victim.slot} did not start its ${HEAVY_KINDS[kind]} call within 60 s (${currentCall(victim.slot)})`);
        await sleep(Math.floor(rng() * 21));
        const inCall = Atomics.load(v.ctl, base + F_IN_CALL) === 1;
        await victim.worker.terminate();
        live.delete(victim.slot);
        terminatedSlots.add(victim.slot);
        stats.terminations++;
        if (inCall) stats.terminatedInCall++;
        const name = HEAVY_KINDS[kind];
        stats.terminatedBy[name] = (stats.terminatedBy[name] || 0) + (inCall ? 1 : 0);
        if (main !== undefined) checkMainHandle(`after terminating worker ${victim.slot} in ${name}`);
        await startWorker();
      }
      if (main !== undefined && progress() >= closeMainAt) {
        // Close the main thread's handle while the workers go on.
        // Every worker must complete further calls (they would fail with
        // STORE_CLOSED, a finding of their own, if the close had reached them).
        const opsOf = () => [...live.values()].map((e) => Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * e.slot + F_OPS));
        const before = opsOf();
        main.close();
        main = undefined;
        const progressBy = Date.now() + 60_000;
        let after = opsOf();
        while (!after.every((n, i) => n > before[i] + 1) && Date.now() < progressBy) {
          await sleep(50);
          after = opsOf();
        }
        stats.mainClosedWhileWorkersRan = after.every((n, i) => n > before[i] + 1);
        if (!stats.mainClosedWhileWorkersRan) finding(`after the main thread closed its handle some worker made no progress in 60 s: ${before} -> ${after}`);
        const locked = openFromOtherProcess(args.package, storePath);
        if (locked === 'STORE_LOCKED') stats.lockedWhileWorkersHeld++;
        else finding(`with only worker threads holding the store, another process got ${locked}, not STORE_LOCKED`);
      }
      for (const e of live.values()) {
        const cur = Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * e.slot + F_CURRENT);
        if (cur !== 0 && (Date.now() - started) / 1000 - (cur & 0xfffff) > STALL_SECONDS && !stalled.has(`${e.slot}:${cur}`)) {
          stalled.add(`${e.slot}:${cur}`);
          finding(`worker ${e.slot} stalled: ${currentCall(e.slot)}`);
        }
      }
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        let ops = 0;
        for (const slot of usedSlots) ops += Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * slot + F_OPS);
        log(`t=${Math.round((Date.now() - started) / 1000)}s operations=${ops} terminations=${stats.terminations} findings=${findings.length}`);
      }
    }

    // Stop: every live worker finishes its call, closes its handle and exits.
    Atomics.store(v.ctl, STOP, 1);
    const stopping = [...live.values()];
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 120_000);
    });
    for (const e of stopping) {
      if ((await Promise.race([e.exited, timeout])) === 'timeout') {
        finding(`worker ${e.slot} did not stop within 120 s`);
        await e.worker.terminate();
      } else if (Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * e.slot + F_DONE) !== 1) {
        finding(`worker ${e.slot} exited without closing its store`);
      }
    }
    clearTimeout(timer);
    for (const slot of usedSlots) operations += Atomics.load(v.ctl, SLOT_BASE + SLOT_WORDS * slot + F_OPS);
    if (main !== undefined) {
      main.close();
      main = undefined;
    }

    // Every handle is closed or its thread gone: another process may open now.
    const after = openFromOtherProcess(args.package, storePath);
    if (!after.startsWith('ok:')) finding(`after every thread closed or was terminated, another process got ${after} (a terminated thread kept its reference?)`);
    main = ts.open(storePath);
    if (args['inject-faults']) injectFaults(main, v, maxSlots, usedSlots, terminatedSlots, log);
    const reopened = verify(main, v, maxSlots, usedSlots, terminatedSlots, 'after reopen', finding);
    if (after.startsWith('ok:') && Number(after.slice(3)) !== reopened) finding(`the other process saw ${after.slice(3)} records, this one ${reopened}`);
    finalRecords = reopened;
    main.close();
    main = undefined;
  } catch (e) {
    finding(`main thread: ${describeError(e)}\n${e && e.stack}`);
  } finally {
    Atomics.store(v.ctl, STOP, 1);
    for (const e of live.values()) await e.worker.terminate();
    try {
      main?.close();
    } catch {
      // reported above
    }
    if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
    else log(`store kept at ${storePath}`);
  }

  let closes = 0;
  let iterations = 0;
  let recalls = 0;
  for (const slot of usedSlots) {
    const b = SLOT_BASE + SLOT_WORDS * slot;
    closes += v.ctl[b + F_CLOSES];
    iterations += v.ctl[b + F_ITERATIONS];
    recalls += v.ctl[b + F_RECALLS];
  }
  const summary = {
    name: 'threads',
    operations,
    findings,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    workers: args.workers,
    workerThreadsStarted: usedSlots.size,
    terminations: stats.terminations,
    terminatedInCall: stats.terminatedInCall,
    terminatedInCallBy: stats.terminatedBy,
    handleClosesAndReopens: closes,
    fullIterations: iterations,
    recalls,
    mainClosedWhileWorkersRan: stats.mainClosedWhileWorkersRan,
    lockedWhileOnlyWorkersHeld: stats.lockedWhileWorkersHeld,
    finalRecords,
    seed: args.seed,
  };
  process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
  process.exitCode = findings.length > 0 ? 1 : 0;
}

if (isMainThread) {
  await main();
} else {
  await workerMain();
}
