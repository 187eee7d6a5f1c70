// The child process of damage.mjs. Two modes:
//
//   --build KIND --dir DIR   builds a reference store and prints "expect {json}"
//                            (what it must hold, computed from the inputs, not
//                            read back). KIND 'killed' then prints "ready" and
//                            waits to be SIGKILLed with the store open.
//   --cases FILE             runs damage cases: FILE is JSON { refs, seed, from,
//                            to, until, work, plant }. For each case i it
//                            prints "case i start {mutation}", makes a fresh
//                            copy of a reference store, applies the mutation,
//                            opens it and reads everything, then prints
//                            "case i result {json}". The parent judges the
//                            result, so a signal death or a hang names the case.
//                            plant { case, kind } makes that case misbehave on
//                            purpose (alter: a record read wrong, drop: one
//                            missing, signal: SIGSEGV, hang), for the tests
//                            that prove such faults are caught.
//
// Reading covers every read path: iterate('all') with embeddings, iterate of
// each tier, get/has of every expected and every deleted id, recall and
// recallAsync over all records, list() through cursors per tier, counts(),
// stats() and close(); some cases then write (put, migrate, compact, close)
// and read the result back read-only. Results carry data digests, not data.
import fs from 'node:fs';
import path from 'node:path';
import {
  loadTierstore,
  mixSeed,
  mulberry32,
  parseArgs,
  randInt,
  randomMetadata,
  recordDigest,
  textOfBytes,
  writeLineSync,
} from './common.mjs';
import { chooseMutation, applyMutation, INDEX_FILE, loadImage, logEnd, materialize } from './damage.mjs';

const args = parseArgs(process.argv.slice(2), { build: '', dir: '', cases: '' });
const { open } = loadTierstore();
const TIERS = ['hot', 'warm', 'cold'];
// The filtered recall every case checks against the records' own metadata.
const FILTER_I = Array.from({ length: 36 }, (_, j) => 2 * j);
const FILTER = { metadata: { i: FILTER_I } };

// ---------------------------------------------------------------------------
// Reference stores

function referenceRecord(rng, i, dims, prefix) {
  const kind = rng();
  const bytes = i === 3 ? 100_000 : i === 5 ? 0 : kind < 0.1 ? randInt(rng, 2000, 9000) : randInt(rng, 20, 600);
  const id = i % 9 === 4 ? `${prefix}-ü-${i}-日本` : `${prefix}-${String(i).padStart(3, '0')}`;
  const embedding = new Float32Array(dims);
  if (i !== 6) for (let d = 0; d < dims; d++) embedding[d] = rng() * 2 - 1; // record 6: all zeros
  const rec = {
    id,
    content: bytes === 0 ? '' : `MARK-${i}-` + textOfBytes(rng, bytes, 0.05),
    embedding,
    confidence: rng(),
    activation: rng(),
    createdAt: 1_690_000_000_000 + i * 1000,
  };
  if (i % 5 !== 2) rec.metadata = { i, ...randomMetadata(rng) };
  return rec;
}

function buildReference(kind, dir) {
  const rng = mulberry32(mixSeed(0xdada, kind.length, kind.charCodeAt(0), kind.charCodeAt(kind.length - 1)));
  const expected = new Map(); // id → digest
  const history = new Map(); // id → every digest it ever had (for a lenient torn log tail)
  const deleted = new Set();
  const note = (id, d) => {
    if (d === null) {
      expected.delete(id);
      deleted.add(id);
    } else {
      expected.set(id, d);
      deleted.delete(id);
      if (!history.has(id)) history.set(id, []);
      history.get(id).push(d);
    }
  };
  const put = (s, rec) => {
    s.put(rec);
    note(rec.id, recordDigest(rec));
  };
  const putMany = (s, recs) => {
    s.putMany(recs);
    for (const r of recs) note(r.id, recordDigest(r));
  };
  const del = (s, id) => {
    s.delete(id);
    note(id, null);
  };
  const info = { kind, clean: kind !== 'killed' };
  // The index a clean close wrote part way through the build: a stale index of this same store, for the earlierIndex mutation.
  const saveEarlierIndex = () => {
    const f = path.join(dir, INDEX_FILE);
    if (fs.existsSync(f)) fs.copyFileSync(f, `${dir}-earlier-${INDEX_FILE}`);
  };

  if (kind === 'clean-tiers') {
    info.dims = 8;
    let s = open(dir, { dimensions: 8, hotCapacity: 12, warmCapacity: 20 });
    const recs = Array.from({ length: 72 }, (_, i) => referenceRecord(rng, i, 8, 'ct'));
    for (let at = 0; at < recs.length; at += 12) putMany(s, recs.slice(at, at + 12)); // several cold segments
    s.migrate();
    for (const i of [1, 20, 40, 60]) del(s, recs[i].id); // deletes in several tiers (cold deletion bitmap)
    s.close();
    saveEarlierIndex();
    s = open(dir, { hotCapacity: 12, warmCapacity: 20 });
    put(s, { ...recs[10], content: recs[10].content + ' (updated)', metadata: { updated: true } });
    s.move(recs[30].id, 'hot');
    s.move(recs[50].id, 'warm');
    s.compact();
    for (let i = 0; i < recs.length; i += 7) s.get(recs[i].id);
    s.recall(new Float32Array(8).fill(1), { k: 3, filter: FILTER }); // the warm filter entries: warm.filter at close
    s.close();
  } else if (kind === 'clean-skipwarm') {
    info.dims = 3;
    let s = open(dir, { dimensions: 3, hotCapacity: 5, skipWarm: true });
    const recs = Array.from({ length: 40 }, (_, i) => referenceRecord(rng, i, 3, 'sw'));
    for (const r of recs.slice(0, 25)) put(s, r);
    s.close();
    saveEarlierIndex();
    s = open(dir, { hotCapacity: 5, skipWarm: true });
    putMany(s, recs.slice(25));
    s.migrate();
    for (const i of [2, 17, 33]) del(s, recs[i].id);
    s.close(); // no compaction: the deletion bitmap is not empty
  } else if (kind === 'killed') {
    info.dims = 8;
    let s = open(dir, { dimensions: 8, hotCapacity: 12, warmCapacity: 15 });
    const recs = Array.from({ length: 50 }, (_, i) => referenceRecord(rng, i, 8, 'kl'));
    putMany(s, recs.slice(0, 30));
    putMany(s, recs.slice(30));
    s.migrate();
    s.close();
    saveEarlierIndex();
    // Big capacities from here on: no migration, so the log only grows and
    // the log offsets of each later op are known.
    s = open(dir, { hotCapacity: 100_000, warmCapacity: 100_000 });
    s.compact();
    const tierOf = new Map([...s.iterate()].map((m) => [m.id, m.tier]));
    const inTier = (t) => [...tierOf].filter(([, x]) => x === t).map(([id]) => id);
    // The first entry starts after the log's file header: the size of a new store's log.
    const probe = open(`${dir}-probe`, { dimensions: 8 });
    const header = probe.stats().hotLogBytes;
    probe.close();
    fs.rmSync(`${dir}-probe`, { recursive: true, force: true });
    const log = { header, hot0: inTier('hot'), offsets: [s.stats().hotLogBytes], ops: [] };
    const [hot, warm, cold] = [inTier('hot'), inTier('warm'), inTier('cold')];
    const byId = new Map(recs.map((r) => [r.id, r]));
    const plan = [
      () => put(s, referenceRecord(rng, 100, 8, 'kl-new')),
      () => put(s, { ...byId.get(warm[0]), content: 'upsert of a warm record', createdAt: 5 }),
      () => put(s, { ...byId.get(cold[0]), content: 'upsert of a cold record ' + 'é'.repeat(300), createdAt: 6 }),
      () => del(s, hot[0]),
      () => del(s, warm[1]),
      () => del(s, cold[1]),
      () => putMany(s, [referenceRecord(rng, 101, 8, 'kl-new'), { ...byId.get(hot[1]), content: 'upsert of a hot record in a batch' }, referenceRecord(rng, 102, 8, 'kl-new')]),
      () => put(s, referenceRecord(rng, 103, 8, 'kl-new')),
      () => put(s, { ...byId.get(cold[2]), metadata: { again: 1 }, createdAt: 7 }),
      () => del(s, cold[3]),
      () => put(s, referenceRecord(rng, 104, 8, 'kl-new')),
      () => s.move(hot[2], 'cold'), // stage entries: single moves to cold
      () => s.move(warm[2], 'cold'),
    ];
    for (const step of plan) {
      const before = new Map(expected);
      const deletedBefore = new Set(deleted);
      step();
      const touched = [...new Set([...expected.keys(), ...before.keys(), ...deleted])].filter(
        (id) => expected.get(id) !== before.get(id) || deleted.has(id) !== deletedBefore.has(id),
      );
      log.ops.push(touched);
      log.offsets.push(s.stats().hotLogBytes);
    }
    info.log = log;
    info.history = Object.fromEntries(history);
    writeLineSync(`expect ${JSON.stringify({ ...info, records: Object.fromEntries(expected), deleted: [...deleted] })}`);
    writeLineSync('ready');
    setInterval(() => {}, 1 << 30); // killed here, the store open
    return;
  } else {
    throw new Error(`unknown reference kind ${kind}`);
  }
  info.history = Object.fromEntries(history);
  writeLineSync(`expect ${JSON.stringify({ ...info, records: Object.fromEntries(expected), deleted: [...deleted] })}`);
}

// ---------------------------------------------------------------------------
// Reading a damaged store

function errorInfo(e) {
  return { name: e?.name, code: e?.code, message: String(e?.message ?? e), isTierStoreError: e?.constructor?.name === 'TierStoreError' };
}

/** Reads everything; returns the observation. Throws what the store throws (the stage is in `at.stage`). */
async function readEverything(dir, ref, at, plant) {
  at.stage = 'open';
  const s = open(dir, {});
  try {
    at.stage = 'stats';
    const st = s.stats();
    const obs = { tornLogBytes: st.tornLogBytes, indexRebuilt: st.indexRebuilt, indexRebuildReason: st.indexRebuildReason };
    at.stage = 'iterate';
    obs.all = [];
    const filterWant = [];
    for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) {
      obs.all.push([m.id, m.tier, recordDigest(m)]);
      if (FILTER_I.includes(m.metadata?.i)) filterWant.push(m.id);
    }
    if (plant === 'alter') obs.all[0][2] = obs.all[0][2].replace(/^./, (c) => (c === '0' ? '1' : '0'));
    if (plant === 'drop') obs.all.pop();
    at.stage = 'iterate-tier';
    obs.perTier = {};
    for (const t of TIERS) obs.perTier[t] = [...s.iterate({ tier: t, batchSize: 7 })].map((m) => m.id);
    at.stage = 'get';
    obs.gets = {};
    for (const id of ref.ids) {
      const m = s.get(id, { includeEmbedding: true });
      obs.gets[id] = { get: m === undefined ? null : recordDigest(m), has: s.has(id) };
    }
    at.stage = 'counts';
    const c = s.counts();
    obs.counts = { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
    if (c.total > 0) {
      at.stage = 'recall';
      const q = Array.from({ length: s.dimensions }, (_, d) => Math.sin(d + 1));
      const k = Math.min(c.total, 10_000);
      const hits = s.recall(q, { k, includeEmbeddings: true });
      obs.recall = hits.map((h) => [h.id, h.score, recordDigest(h.memory)]);
      at.stage = 'recallAsync';
      const asyncHits = await s.recallAsync(q, { k });
      obs.recallAsync = asyncHits.map((h) => h.id);
      at.stage = 'recall-filter';
      const filtered = await s.recallAsync(q, { k, filter: FILTER });
      obs.filtered = { want: filterWant.sort(), got: filtered.map((h) => h.id).sort() };
    }
    at.stage = 'list';
    obs.list = {};
    for (const t of TIERS) {
      const ids = [];
      let cursor;
      for (let page = 0; page < 100_000; page++) {
        const res = cursor === undefined ? s.list({ tier: t, limit: 9, includeEmbeddings: true }) : s.list({ tier: t, limit: 9, cursor, includeEmbeddings: true });
        for (const m of res.memories) ids.push([m.id, recordDigest(m)]);
        cursor = res.pagination.nextCursor;
        if (cursor === undefined) break;
      }
      obs.list[t] = ids;
    }
    at.stage = 'close';
    return obs;
  } finally {
    s.close();
  }
}

/** After a clean read: write, migrate, compact, close; then read back read-only. */
function writeAndReread(dir, at) {
  at.stage = 'write-open';
  const w = open(dir, { hotCapacity: 2, warmCapacity: 3 });
  try {
    at.stage = 'write-put';
    w.put({ id: 'after-damage', content: 'written after the damage', embedding: new Float32Array(w.dimensions).fill(0.5), createdAt: 1, metadata: { after: true } });
    at.stage = 'write-migrate';
    w.migrate();
    at.stage = 'write-compact';
    w.compact();
  } finally {
    at.stage = 'write-close';
    w.close();
  }
  at.stage = 'reread';
  const r = open(dir, { readOnly: true });
  try {
    const all = [];
    for (const m of r.iterate({ tier: 'all', includeEmbeddings: true })) all.push([m.id, m.tier, recordDigest(m)]);
    return all;
  } finally {
    r.close();
  }
}

async function runCases(jobFile) {
  const job = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
  const refs = job.refs.map((r) => ({ ...r, image: loadImage(r.dir) }));
  for (let i = job.from; i < job.to; i++) {
    if (job.until && Date.now() > job.until) break;
    const rng = mulberry32(mixSeed(job.seed, i, 0xda3a9e));
    const baseline = i < refs.length; // the first cases read each reference undamaged
    const ref = baseline ? refs[i] : refs[Math.floor(rng() * refs.length)];
    const mutation = baseline ? { kind: 'none', files: [], description: 'no damage (baseline)' } : chooseMutation(rng, ref, refs);
    writeLineSync(`case ${i} start ${JSON.stringify({ ref: ref.kind, mutation })}`);
    const dir = path.join(job.work, `case-${i}`);
    fs.rmSync(dir, { recursive: true, force: true });
    materialize(ref.image, dir);
    applyMutation(dir, mutation, refs);
    const logFile = path.join(dir, 'hot.log');
    const logSizeBefore = fs.existsSync(logFile) ? logEnd(logFile) : null;
    const fingerprintBefore = statFingerprint(dir);
    const indexChanged = !sameBytes(path.join(dir, INDEX_FILE), path.join(ref.dir, INDEX_FILE));
    const plant = job.plant && job.plant.case === i ? job.plant.kind : undefined;
    if (plant === 'signal') process.kill(process.pid, 'SIGSEGV');
    if (plant === 'hang') await new Promise(() => setInterval(() => {}, 1000));
    const at = { stage: 'open' };
    const result = { logSizeBefore, indexChanged };
    try {
      result.obs = await readEverything(dir, ref, at, plant);
      if (rng() < 0.25) {
        result.wrote = true;
        result.reread = writeAndReread(dir, at);
      }
      result.ok = true;
    } catch (e) {
      result.ok = false;
      result.stage = at.stage;
      result.error = errorInfo(e);
      if (at.stage === 'open') result.filesChangedByFailedOpen = changedFiles(fingerprintBefore, statFingerprint(dir));
    }
    writeLineSync(`case ${i} result ${JSON.stringify(result)}`);
    if (!job.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  writeLineSync('finished');
}

/** Whether two files hold the same bytes (both absent counts as the same). */
function sameBytes(a, b) {
  const ea = fs.existsSync(a);
  const eb = fs.existsSync(b);
  if (!ea || !eb) return ea === eb;
  return fs.readFileSync(a).equals(fs.readFileSync(b));
}

/** name → size/mtime/inode of each file: enough to see whether an open wrote anything. */
function statFingerprint(dir) {
  const out = {};
  for (const name of fs.readdirSync(dir)) {
    if (name === 'LOCK') continue;
    const st = fs.statSync(path.join(dir, name), { bigint: true });
    out[name] = `${st.size}:${st.mtimeNs}:${st.ino}`;
  }
  return out;
}

function changedFiles(a, b) {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
}

if (args.build) buildReference(args.build, args.dir);
else if (args.cases) await runCases(args.cases);
else throw new Error('--build KIND --dir DIR or --cases FILE');
