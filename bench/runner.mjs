// One store's benchmark, in its own process (forked by run.mjs):
//   node bench/runner.mjs <store> <n> <ops> [<json options>]
// <store> is a name from stores.mjs, or 'reference' (the expected answers,
// computed from the generator with no store at all). <ops> is a comma list
// (or 'all'), or 'reopen-only': insert, close, and only the reopens in fresh
// processes (the larger store of --reopen-scale). Reports {type:'progress'} and one {type:'result'} message to the
// parent through IPC (or prints the result as JSON when run by hand).
//
// Generation is never timed: each chunk of records is generated with the
// stopwatch stopped, so a store's figures measure the store (and the encoding
// its users must do), not the workload generator.

import { mkdtempSync, rmSync, readdirSync, lstatSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as W from './workload.mjs';
import { adapterFor } from './stores.mjs';
import { RecordDigest } from './digest.mjs';
import { referenceChecks } from './reference.mjs';
import { dropSupport, dropFiles, warmFiles } from './pagecache.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const OPS = ['insert', 'migrate', 'iter', 'iter-emb', 'iter-batch', 'iter-arrow', 'iter-floor', 'get', 'recall', 'recall-async', 'recall-filter', 'put', 'reopen', 'move-cold', 'disk', 'rss'];

const [storeName, nArg, opsArg = 'all', optArg = '{}'] = process.argv.slice(2);
const n = Number(nArg);
const o = { queries: 10, gets: 10000, puts: 10000, chunk: 2000, k: 10, refExtra: 10, seed: W.DEFAULT_SEED, keep: false, dir: os.tmpdir(), reopenReps: 3, ...JSON.parse(optArg) };
const reopenOnly = opsArg === 'reopen-only';
const ops = new Set(opsArg === 'all' ? OPS : reopenOnly ? ['reopen'] : opsArg.split(','));
ops.add('insert');
ops.add('iter'); // the count cross-check always runs

function send(msg) {
  if (process.send) process.send(msg);
  else if (msg.type !== 'progress') console.log(JSON.stringify(msg, null, 2));
}
let lastProgress = 0;
function progress(phase, done, total) {
  const t = Date.now();
  if (done < total && t - lastProgress < 200) return;
  lastProgress = t;
  send({ type: 'progress', store: storeName, phase, done, total });
}

class Stopwatch {
  constructor() { this.ns = 0n; this.t0 = 0n; }
  start() { this.t0 = process.hrtime.bigint(); }
  stop() { this.ns += process.hrtime.bigint() - this.t0; }
  get s() { return Number(this.ns) / 1e9; }
}
const time = async (fn) => {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return { r, s: Number(process.hrtime.bigint() - t0) / 1e9 };
};
const median = (xs) => {
  const a = Float64Array.from(xs).sort();
  const m = a.length >> 1;
  return a.length === 0 ? NaN : a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

function diskUsage(dir) {
  let allocated = 0, apparent = 0, files = 0;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) {
      const u = diskUsage(p);
      allocated += u.allocated; apparent += u.apparent; files += u.files;
    } else {
      allocated += st.blocks * 512; apparent += st.size; files++;
    }
  }
  return { allocated, apparent, files };
}

const queries = () => Array.from({ length: o.queries }, (_, q) => W.queryOf(q, n, o.seed));
const getIds = () => Array.from(W.sampleIndices(o.gets, n, 1, o.seed), (i) => W.idOf(i, o.seed));

// ---------------------------------------------------------------------------
// The reference: what every store must answer, from the generator alone
// (bench/reference.mjs).

function reference() {
  return referenceChecks(n, o, (i) => progress('reference', i, n));
}

// The floor under any store's bulk insert in this process: turning the
// workload's JS objects into bytes, with no store and no validation (id,
// content and metadata JSON to UTF-8, the embedding into a Float32Array).
// Every store must do at least this, so no bulk insert can beat it; it
// bounds what a records/s target can ask of this machine. Median of 3 passes.
function encodeFloor(encoding) {
  const buf = Buffer.allocUnsafeSlow(64 << 20);
  const emb = new Float32Array(o.chunk * W.DIMENSIONS);
  const rates = [];
  let sink = 0;
  for (let pass = 0; pass < 3; pass++) {
    const sw = new Stopwatch();
    for (let s = 0; s < n; s += o.chunk) {
      const recs = W.chunk(s, Math.min(n, s + o.chunk), o.seed); // untimed
      progress(`${encoding} floor`, pass * n + s, 3 * n);
      sw.start();
      let off = 0;
      for (let i = 0; i < recs.length; i++) {
        const r = recs[i];
        off += buf.write(r.id, off, encoding);
        off += buf.write(r.content, off, encoding);
        off += buf.write(JSON.stringify(r.metadata), off, encoding);
        emb.set(r.embedding, i * W.DIMENSIONS);
      }
      sw.stop();
      sink += off + emb[0];
    }
    rates.push(n / sw.s);
  }
  if (Number.isNaN(sink)) throw new Error('unreachable'); // keeps the loop's results alive
  return median(rates);
}

// ---------------------------------------------------------------------------
// Reopens of the closed store in fresh processes (bench/reopen.mjs), each
// once with every file of the store in the page cache and once with none of
// it there, o.reopenReps times, alternating. A cold figure is only kept if
// every drop was verified (bench/pagecache.mjs); otherwise coldReason says why.

function reopenChild(spec) {
  const out = execFileSync(process.execPath, [path.join(HERE, 'reopen.mjs'), storeName, JSON.stringify(spec)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop());
}

function freshReopens(a, dir, id) {
  const spec = { ...a.spec(), id };
  // After the open and its get: one filtered recallAsync (the 1% metadata
  // filter), the first of the process, timed on its own.
  if (typeof a.topkFiltered === 'function') {
    spec.firstFilter = { query: Array.from(W.queryOf(0, n, o.seed)), k: o.k, filter: W.benchFilters(n)[0].filter };
  }
  const support = dropSupport(dir);
  const warm = [], cold = [], drops = [];
  let coldReason = support.ok ? undefined : support.reason;
  for (let r = 0; r < o.reopenReps; r++) {
    progress('reopen, new process, cached', r, o.reopenReps);
    warmFiles(dir);
    warm.push(reopenChild(spec));
    if (coldReason) continue;
    progress('reopen, new process, cache dropped', r, o.reopenReps);
    const d = dropFiles(dir, support);
    drops.push(d);
    if (!d.ok) { coldReason = d.reason; continue; }
    cold.push(reopenChild(spec));
  }
  if (coldReason) cold.length = 0; // a series with an unverified drop is not a cold figure
  return { reps: o.reopenReps, warm, cold, coldReason, dropMethod: support.method, drops };
}

// The figures of freshReopens' measurements (medians), under `prefix`.
function reopenFigures(m, prefix, f, unmeasured) {
  const med = (xs, key, scale = 1) => {
    const v = xs.map((x) => x[key]).filter((x) => x !== undefined);
    return v.length === xs.length && v.length > 0 ? median(v) * scale : undefined;
  };
  const set = (key, v) => { if (v !== undefined) f[`${prefix}${key}`] = v; };
  set('warm', med(m.warm, 'ms'));
  set('rchar', med(m.warm, 'rchar', 1e-6));
  set('rss', med(m.warm, 'rss', 1e-6));
  set('rss-anon', med(m.warm, 'rssAnon', 1e-6));
  set('rss-file', med(m.warm, 'rssFile', 1e-6));
  set('first-filter', med(m.warm, 'firstFilterMs'));
  if (m.coldReason) {
    for (const k of ['cold', 'cold-read']) unmeasured[`${prefix}${k}`] = m.coldReason;
    if (m.warm.some((x) => x.firstFilterMs !== undefined)) unmeasured[`${prefix}first-filter-cold`] = m.coldReason;
  } else {
    set('cold', med(m.cold, 'ms'));
    set('cold-read', med(m.cold, 'readBytes', 1e-6));
    set('first-filter-cold', med(m.cold, 'firstFilterMs'));
  }
}

// --reopen-scale: a default tierstore of n records (the run's N times the
// scale) built only to be reopened; no other operation runs on it.
async function reopenScaled() {
  const a = adapterFor(storeName);
  const dir = mkdtempSync(path.join(o.dir, `tierstore-bench-${storeName}-reopen-`));
  const f = {}, c = {}, unmeasured = {};
  try {
    await a.create(dir, { n, puts: 0 });
    const sw = new Stopwatch();
    await a.bulk(n, o.chunk, (s, e) => { progress('insert', e, n); return W.chunk(s, e, o.seed); }, sw);
    f.insert = n / sw.s;
    if (a.counts) c.counts = a.counts();
    await a.close();
    const m = freshReopens(a, dir, W.idOf(n >> 1, o.seed));
    reopenFigures(m, 'reopen-', f, unmeasured);
    c.reopenFresh = m;
  } finally {
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
  return { figures: f, checks: c, unmeasured, notes: [] };
}

async function bench() {
  const a = adapterFor(storeName);
  const isTs = storeName.startsWith('tierstore');
  const variant = isTs ? (storeName.split('-')[1] ?? 'default') : null;
  const dir = mkdtempSync(path.join(o.dir, `tierstore-bench-${storeName}-`));
  const f = {}; // figures
  const c = {}; // answers to cross-check
  const notes = [];
  const unmeasured = {}; // figure key -> why this system cannot measure it
  try {
    await a.create(dir, { n, puts: o.puts });
    c.capabilities = { batches: typeof a.iterateBatches === 'function', recallAsync: typeof a.topkAsync === 'function' };

    // bulk insert
    let bytes = 0;
    const sw = new Stopwatch();
    // Adapters call gen() with their stopwatch stopped.
    const gen = (s, e) => {
      const recs = W.chunk(s, e, o.seed);
      for (const r of recs) bytes += W.logicalBytes(r);
      progress('insert', e, n);
      return recs;
    };
    await a.bulk(n, o.chunk, gen, sw);
    f.insert = n / sw.s;
    f['insert-mb'] = bytes / sw.s / 1e6;
    c.logicalBytes = bytes;

    if (isTs) {
      c.countsAfterInsert = a.counts();
      if (variant === 'warm' || variant === 'cold') {
        progress('migrate', 0, 1);
        const m = a.migrate();
        f.migrate = n / (m.us / 1e6);
        c.migrate = { report: m.report, options: m.options };
        if (m.options.hotCapacity !== 0) notes.push(`hotCapacity 0 refused; used ${m.options.hotCapacity}`);
        if (variant === 'warm' && a.warmOverhead) {
          const w = a.warmOverhead(bytes);
          if (w) {
            f['warm-disk'] = w.disk;
            if (w.ram !== undefined) f['warm-ram'] = w.ram;
            c.warmOverhead = w;
          }
        }
      }
      c.counts = a.counts();
    }

    // Each timed pass is followed by an untimed one over the same API path
    // with the exact digest (c.exact), so checking costs the figures nothing.
    c.exact = {};
    const exactly = async (label, fn) => {
      progress(`${label} (check)`, 0, 1);
      c.exact[label] = (await fn(new RecordDigest(W.DIMENSIONS))).toJSON();
    };

    // iteration, without then with embeddings
    progress('iter', 0, 1);
    let t = await time(() => a.iterate(false));
    f.iter = t.r.count / t.s;
    c.iter = t.r.toJSON();
    await exactly('iter', (d) => a.iterate(false, d));
    if (ops.has('iter-emb')) {
      progress('iter-emb', 0, 1);
      t = await time(() => a.iterate(true));
      f['iter-emb'] = t.r.count / t.s;
      c.iterEmb = t.r.toJSON();
      await exactly('iterEmb', (d) => a.iterate(true, d));
    }
    // A store with batches() must answer through it: an exception fails the run.
    if (ops.has('iter-batch') && a.iterateBatches) {
      progress('iter-batch', 0, 1);
      t = await time(() => a.iterateBatches(false));
      f['iter-batch'] = t.r.count / t.s;
      c.iterBatch = t.r.toJSON();
      await exactly('iterBatch', (d) => a.iterateBatches(false, d));
      await exactly('iterBatchEmb', (d) => a.iterateBatches(true, d));
    }

    // Arrow scans (tierstore): every id read, then with embeddings.
    if (ops.has('iter-arrow') && a.iterateArrow) {
      progress('iter-arrow', 0, 1);
      a.loadArrow();
      t = await time(() => a.iterateArrow(false));
      f['iter-arrow'] = t.r.count / t.s;
      t = await time(() => a.iterateArrow(true));
      f['iter-arrow-emb'] = t.r.count / t.s;
      await exactly('iterArrow', (d) => a.iterateArrow(false, d));
      await exactly('iterArrowEmb', (d) => a.iterateArrow(true, d));
    }
    // The floor of an Arrow scan that reads every id: the same ids in one
    // Utf8 vector already in memory, each read with get() as the scan reads
    // them (apache-arrow's string decoding, no store).
    if (ops.has('iter-arrow') && isTs && variant === 'default') {
      const arrow = await import('apache-arrow');
      const ids = arrow.vectorFromArray(Array.from({ length: n }, (_, i) => W.idOf(i, o.seed)), new arrow.Utf8());
      let chars = 0;
      t = await time(() => {
        for (let i = 0; i < ids.length; i++) chars += ids.get(i).length;
        return chars;
      });
      f['arrow-id-floor'] = n / t.s;
    }
    // The floor of per-record iteration: the same records held in memory as
    // UTF-8 Buffers, one content string and one JSON.parse of the metadata
    // made per record (what iterate() cannot avoid doing in JS).
    if (ops.has('iter-floor') && isTs && variant === 'default') {
      progress('iter-floor', 0, 1);
      const held = [];
      for (let i = 0; i < n; i++) {
        const r = W.recordOf(i, o.seed);
        held.push([Buffer.from(r.content, 'utf8'), Buffer.from(JSON.stringify(r.metadata), 'utf8')]);
      }
      let sink = 0;
      t = await time(() => {
        for (let i = 0; i < held.length; i++) {
          const content = held[i][0].toString('utf8');
          const metadata = JSON.parse(held[i][1].toString('utf8'));
          sink += content.length + metadata.turn;
        }
        return sink;
      });
      f['iter-floor'] = n / t.s;
    }

    // get by id (random ids, with repeats)
    if (ops.has('get')) {
      const ids = getIds();
      progress('get', 0, ids.length);
      t = await time(() => a.getMany(ids));
      f.get = ids.length / t.s;
      c.get = t.r.toJSON();
      await exactly('get', (d) => a.getMany(ids, d));
    }

    // cosine top-k over every record
    const qs = ops.has('recall') || ops.has('recall-async') || ops.has('recall-filter') ? queries() : [];
    if (ops.has('recall')) {
      if (isTs && !a.hasRecall) {
        notes.push('store.recall() not implemented yet: recall n/a');
      } else {
        const ms = [];
        c.recall = [];
        for (let q = 0; q < qs.length; q++) {
          progress('recall', q, qs.length);
          t = await time(() => a.topk(qs[q], o.k));
          ms.push(t.s * 1e3);
          c.recall.push(t.r);
        }
        f.recall = median(ms);
        c.recallMs = ms;
      }
    }
    if (ops.has('recall-async') && a.topkAsync) {
      if (!a.hasRecallAsync) {
        notes.push('store.recallAsync() not implemented yet: recall-async n/a');
      } else {
        const ms = [];
        c.recallAsync = [];
        for (let q = 0; q < qs.length; q++) {
          progress('recall-async', q, qs.length);
          t = await time(() => a.topkAsync(qs[q], o.k));
          ms.push(t.s * 1e3);
          c.recallAsync.push(t.r);
        }
        f['recall-async'] = median(ms);
        c.recallAsyncMs = ms;
      }
    }

    // Filtered recallAsync (tierstore): each bench filter, ms per query.
    if (ops.has('recall-filter') && a.topkFiltered) {
      const qs2 = qs.length > 0 ? qs : queries();
      c.recallFiltered = {};
      for (const { name, filter } of W.benchFilters(n)) {
        const ms = [];
        const answers = [];
        for (let q = 0; q < qs2.length; q++) {
          progress(`recall-filter ${name}`, q, qs2.length);
          t = await time(() => a.topkFiltered(qs2[q], o.k, filter));
          ms.push(t.s * 1e3);
          answers.push(t.r);
        }
        f[`recall-${name}`] = median(ms);
        c.recallFiltered[name] = answers;
      }
    }

    // single put latency: upserts of existing records with their own data
    // (counts and answers do not change). Only where puts go the default way.
    if (ops.has('put') && (!isTs || variant === 'default')) {
      const recs = Array.from(W.sampleIndices(o.puts, n, 2, o.seed), (i) => W.recordOf(i, o.seed));
      progress('put', 0, recs.length);
      const lat = (await a.putEach(recs)).sort();
      f['put-p50'] = percentile(lat, 0.5);
      f['put-p99'] = percentile(lat, 0.99);
      c.putMeanUs = lat.reduce((x, y) => x + y, 0) / lat.length;
      if (isTs) c.countsAfterPut = a.counts();
    }

    await a.close();
    if (ops.has('disk')) {
      const u = diskUsage(dir);
      f.disk = u.allocated / 1e6;
      c.disk = u;
    }
    if (ops.has('reopen')) {
      progress('reopen', 0, 1);
      const probe = W.idOf(n >> 1, o.seed);
      t = await time(() => a.reopen(probe));
      f.reopen = t.s * 1e3;
      c.reopenFound = t.r;
      if (isTs) c.countsAfterReopen = a.counts();
      await a.close();

      const m = freshReopens(a, dir, probe);
      reopenFigures(m, 'reopen-', f, unmeasured);
      c.reopenFresh = m;
      // The hot tier's load: every record of the all-hot store is read back
      // from the hot log on open, so the open's time per record is its cost.
      if (variant === 'hot') {
        const hot = m.warm[0]?.counts?.hot;
        if (hot > 0) {
          f['hot-load'] = (f['reopen-warm'] * 1e3) / hot;
          f['hot-load-floor'] = firstTouchFloorUs(hot, o.seed);
          if (f['reopen-cold'] !== undefined) f['hot-load-cold'] = (f['reopen-cold'] * 1e3) / hot;
          else unmeasured['hot-load-cold'] = m.coldReason;
        }
      }
    }
    // Single moves to cold (the default store, after everything else: it
    // changes the store's tiers): 10,000 hot and warm records, or all of N.
    if (ops.has('move-cold') && isTs && variant === 'default' && a.moveEachToCold) {
      progress('move-cold', 0, 1);
      const unique = [...new Set(W.sampleIndices(3 * Math.min(10_000, n), n, 4, o.seed))].slice(0, 10_000);
      const ids = unique.map((i) => W.idOf(i, o.seed));
      const count = ids.length;
      const r = a.moveEachToCold(ids);
      f['move-cold'] = (r.s * 1e3 * 10_000) / count;
      c.moveCold = { count, cold: r.cold };
      if (r.cold !== count) notes.push(`move-cold: ${r.cold} of ${count} records cold after their moves`);
    }
  } finally {
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
  f.rss = (process.resourceUsage().maxRSS * 1024) / 1e6;
  return { figures: f, checks: c, notes, unmeasured, dir: o.keep ? dir : undefined };
}

try {
  // The floors: the strings encoded to UTF-8 in JS (what a store that encodes
// in JS pays), and copied out of V8 as UTF-16 (the least any store pays to
// read a JS string; tierstore converts them to UTF-8 natively).
const result = storeName === 'reference'
  ? { checks: reference(), figures: { encodeFloor: encodeFloor('utf8'), copyFloor: encodeFloor('utf16le') } }
  : reopenOnly ? await reopenScaled() : await bench();
  send({ type: 'result', store: storeName, n, ...result });
  process.exitCode = 0;
} catch (e) {
  send({ type: 'error', store: storeName, message: e?.message ?? String(e), stack: e?.stack });
  process.exitCode = 1;
}
if (process.send) process.disconnect();

// The floor under the hot tier's load: the records' bytes (embedding,
// content, id, metadata JSON) copied into memory the process has never
// touched, as any load into RAM must; on a VM the kernel's zeroing of fresh
// pages dominates it. Microseconds per record.
function firstTouchFloorUs(records, seed) {
  let sample = 0;
  const samples = 1000;
  for (let i = 0; i < samples; i++) {
    const r = W.recordOf(i, seed);
    sample += Buffer.byteLength(r.content) + Buffer.byteLength(r.id) + Buffer.byteLength(JSON.stringify(r.metadata ?? {}));
  }
  const perRecord = W.DIMENSIONS * 4 + sample / samples;
  const total = Math.ceil(perRecord * records);
  const CHUNK = 64 << 20;
  const src = Buffer.alloc(CHUNK, 1);
  const held = [];
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < total; done += CHUNK) {
    const n = Math.min(CHUNK, total - done);
    const fresh = Buffer.allocUnsafeSlow(n); // its own mapping: pages never touched
    src.copy(fresh, 0, 0, n);
    held.push(fresh);
  }
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  held.length = 0;
  return us / records;
}
