// One adapter per store. Each runs the benchmark's loops itself (so a sync
// store pays no `await` per operation) on that store's fastest documented path,
// and builds for every record the same Memory object a user would want:
// content as a string, metadata parsed, scalars, and the embedding as a
// Float32Array only when asked.
//
// Durability is matched to tierstore's default 'relaxed' (a returned write
// survives the process being killed, not necessarily power loss):
//   lmdb-js noSync:true, better-sqlite3 WAL + synchronous=NORMAL,
//   classic-level sync:false (its default).

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { decode, encode, cosineOf, f32 } from './codec.mjs';
import { DIMENSIONS, TopK, norm } from './workload.mjs';
import { Digest } from './digest.mjs';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// What an iteration (or a get loop) saw: a cheap Digest in the timed loops,
// an exact RecordDigest in the untimed checking passes (bench/digest.mjs).
// Every adapter method that reads records takes the digest to fill.
export { Digest } from './digest.mjs';

const now = () => process.hrtime.bigint();
const us = (t0, t1) => Number(t1 - t0) / 1e3;

// Anonymous memory of this process (Linux), or undefined elsewhere.
// Self-contained: warmOverhead() runs its source in a child process.
function anonymousBytes() {
  try {
    const text = require('node:fs').readFileSync('/proc/self/smaps_rollup', 'utf8');
    const m = /^Anonymous:\s+(\d+) kB/m.exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// tierstore

export async function loadTierstore() {
  const tries = [
    () => require(ROOT), // package.json main/exports (CommonJS)
    async () => import(path.join(ROOT, 'dist', 'index.mjs')),
    async () => import(path.join(ROOT, 'dist', 'index.js')),
  ];
  let lastErr;
  for (const t of tries) {
    try {
      const mod = await t();
      const open = mod.open ?? mod.default?.open;
      if (typeof open === 'function') return { open, mod };
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`cannot load tierstore from ${ROOT} (run \`npm run build\` first): ${lastErr?.message ?? 'no open()'}`);
}

// Variants put the same records in different tiers (capacities, docs/tiers.md):
//   tierstore       default options (hot 10,000, the rest warm)
//   tierstore-hot   hotCapacity above N: everything in RAM
//   tierstore-warm  inserted with defaults, then hotCapacity 0 + migrate(): all warm
//   tierstore-cold  then also warmCapacity 0, skipWarm + migrate(): all cold
function tierstoreOptions(variant, n, extraPuts) {
  switch (variant) {
    case 'hot': return { hotCapacity: n + extraPuts + 1 };
    case 'warm': return { hotCapacity: 0, warmCapacity: 2 * n + extraPuts + 1 };
    case 'cold': return { hotCapacity: 0, warmCapacity: 0, skipWarm: true };
    default: return {};
  }
}

export function tierstoreAdapter(variant) {
  let ts, store, dir, opts, n;
  const a = {
    name: variant === 'default' ? 'tierstore' : `tierstore-${variant}`,
    async create(d, ctx) {
      ts = await loadTierstore();
      dir = d;
      n = ctx.n;
      opts = { dimensions: DIMENSIONS };
      if (variant === 'hot') Object.assign(opts, tierstoreOptions('hot', n, ctx.puts));
      store = ts.open(dir, opts);
      a.hasRecall = typeof store.recall === 'function';
      a.hasRecallAsync = typeof store.recallAsync === 'function';
    },
    bulk(total, chunkSize, gen, sw) {
      for (let s = 0; s < total; s += chunkSize) {
        const recs = gen(s, Math.min(total, s + chunkSize)); // untimed
        sw.start();
        store.putMany(recs);
        sw.stop();
      }
    },
    // warm/cold variants: demote everything with that variant's capacities.
    migrate() {
      store.close();
      opts = { dimensions: DIMENSIONS, ...tierstoreOptions(variant, n, 0) };
      store = ts.open(dir, opts);
      const t0 = now();
      let report;
      try {
        report = store.migrate();
      } catch (e) {
        if (opts.hotCapacity === 0) { // capacity 0 refused: fall back to 1
          store.close();
          opts.hotCapacity = 1;
          store = ts.open(dir, opts);
          report = store.migrate();
        } else throw e;
      }
      const t1 = now();
      return { us: us(t0, t1), report, counts: store.counts(), options: opts };
    },
    counts() { return store.counts(); },
    // The warm overhead: bytes a warm record costs beyond its logical
    // bytes (id, content, metadata JSON, embedding), on disk (its block and
    // its var-section extent) and in RAM (anonymous memory the open takes,
    // mostly the id index), per record. Reopens the store to measure RAM.
    warmOverhead(logicalBytes) {
      const st = store.stats();
      const count = st.counts.warm;
      if (count === 0) return undefined;
      const blockBytes = (st.warmBlockFileBytes - 4096) / Math.max(1, st.warmSlots); // less the header page
      // The five scalars (confidence, activation, createdAt, lastAccessAt,
      // accessCount: 32 bytes) are the record's own bytes too.
      const disk = (blockBytes * count + st.warmVarLiveBytes - logicalBytes) / count - 32;
      // RAM in a fresh process: here, malloc would hand the reopen the memory
      // the close just freed, and the anonymous total would not move.
      store.close();
      store = undefined;
      const probe = `const f = ${anonymousBytes.toString()};
        const { open } = require(${JSON.stringify(ROOT)});
        const before = f(); const s = open(${JSON.stringify(dir)}); const after = f(); s.close();
        process.stdout.write(JSON.stringify({ before, after }));`;
      let ram;
      try {
        const { before, after } = JSON.parse(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }));
        if (before !== undefined && after !== undefined) ram = (after - before) / count;
      } catch {
        ram = undefined;  // not Linux, or the probe failed: no RAM figure
      }
      store = ts.open(dir, opts);
      return { disk, ram, blockBytes };
    },
    putEach(recs) {
      const lat = new Float64Array(recs.length);
      for (let i = 0; i < recs.length; i++) {
        const t0 = now();
        store.put(recs[i]);
        lat[i] = us(t0, now());
      }
      return lat;
    },
    getMany(ids, d = new Digest()) {
      for (let i = 0; i < ids.length; i++) {
        const m = store.get(ids[i]);
        if (m) d.add(m);
        else d.miss();
      }
      return d;
    },
    iterate(withEmb, d = new Digest()) {
      for (const m of store.iterate({ tier: 'all', includeEmbeddings: withEmb })) d.add(m);
      return d;
    },
    // Columnar batches(): the same records, no Memory objects built.
    iterateBatches(withEmb, d = new Digest()) {
      for (const b of store.iterate({ tier: 'all', includeEmbeddings: withEmb }).batches()) {
        const k = b.ids.length;
        for (let j = 0; j < k; j++) {
          d.addFields(b.ids[j], b.contents[j], b.metadata[j], b.confidence[j], b.activation[j], b.createdAt[j], b.tiers[j],
            withEmb ? b.embeddings : undefined, j * DIMENSIONS);
        }
      }
      return d;
    },
    // Arrow scan: reads every id (and, with a digest, every field) of the
    // RecordBatches iterate().arrow() yields.
    // Loads apache-arrow (making the iterable does), so its load time is not
    // counted as scan time.
    loadArrow() {
      store.iterate({ tier: 'all' }).arrow();
    },
    // Timed (no digest): counts the records and reads every id.
    iterateArrow(withEmb, d) {
      let count = 0;
      for (const b of store.iterate({ tier: 'all', includeEmbeddings: withEmb, batchSize: 4096 }).arrow()) {
        const k = b.numRows;
        const ids = b.getChild('id');
        if (d === undefined) {
          for (let j = 0; j < k; j++) if (ids.get(j).length === 0) throw new Error('arrow(): an empty id');
          count += k;
          continue;
        }
        const col = (name) => b.getChild(name);
        const [contents, metadata, confidence, activation, createdAt, tiers] =
          ['content', 'metadata', 'confidence', 'activation', 'createdAt', 'tier'].map(col);
        const emb = withEmb ? col('embedding').data[0].children[0].values : undefined;
        for (let j = 0; j < k; j++) {
          d.addFields(ids.get(j), contents.get(j), JSON.parse(metadata.get(j)), confidence.get(j), activation.get(j),
            Number(createdAt.get(j)), tiers.get(j), emb, j * DIMENSIONS);
        }
      }
      return d ?? { count };
    },
    async topkFiltered(q, k, filter) {
      return (await store.recallAsync(q, { k, filter })).map((h) => ({ id: h.id, score: h.score }));
    },
    topk(q, k) {
      return store.recall(q, { k }).map((h) => ({ id: h.id, score: h.score }));
    },
    async topkAsync(q, k) {
      return (await store.recallAsync(q, { k })).map((h) => ({ id: h.id, score: h.score }));
    },
    close() { store.close(); store = undefined; },
    reopen(probeId) {
      store = ts.open(dir, opts);
      return store.get(probeId) !== undefined;
    },
    // Single moves to cold, one call each (relaxed): seconds for all, and
    // how many were cold afterwards. Opens the store, closes it after.
    moveEachToCold(ids) {
      store = ts.open(dir, opts);
      const t0 = now();
      for (const id of ids) store.move(id, 'cold');
      const s = us(t0, now()) / 1e6;
      let cold = 0;
      for (const id of ids) if (store.get(id)?.tier === 'cold') cold++;
      store.close();
      return { s, cold };
    },
    // What a fresh process needs to open this store as this one does
    // (bench/reopen.mjs): attach(spec()), then prepare(), then reopen().
    spec() { return { dir, opts, n }; },
    attach(spec) { ({ dir, opts, n } = spec); },
    async prepare() { ts ??= await loadTierstore(); },
  };
  return a;
}

// ---------------------------------------------------------------------------
// lmdb-js: 'binary' values (see codec.mjs), putSync inside one transactionSync
// for the bulk load, putSync (its own transaction) per single put, getRange.

export function lmdbAdapter() {
  const { open } = require('lmdb');
  let db, dir;
  const openDb = () => open({ path: dir, encoding: 'binary', noSync: true, noMemInit: true });
  return {
    name: 'lmdb',
    async create(d) { dir = d; db = openDb(); },
    bulk(total, chunkSize, gen, sw) {
      const t = Date.now();
      sw.start();
      db.transactionSync(() => {
        for (let s = 0; s < total; s += chunkSize) {
          sw.stop();
          const recs = gen(s, Math.min(total, s + chunkSize));
          sw.start();
          for (const r of recs) db.putSync(r.id, encode(r, t));
        }
      });
      sw.stop();
    },
    putEach(recs) {
      const lat = new Float64Array(recs.length);
      for (let i = 0; i < recs.length; i++) {
        const t0 = now();
        db.putSync(recs[i].id, encode(recs[i], Date.now()));
        lat[i] = us(t0, now());
      }
      return lat;
    },
    getMany(ids, d = new Digest()) {
      // getBinaryFast: a reused buffer (documented as faster), decoded at once.
      for (let i = 0; i < ids.length; i++) {
        const v = db.getBinaryFast(ids[i]);
        if (v) d.add(decode(ids[i], v, false));
        else d.miss();
      }
      return d;
    },
    iterate(withEmb, d = new Digest()) {
      for (const { key, value } of db.getRange({})) d.add(decode(key, value, withEmb));
      return d;
    },
    topk(q, k) {
      const qn = norm(q);
      const top = new TopK(k);
      for (const { key, value } of db.getRange({})) top.offer(key, cosineOf(value, q, qn));
      return top.result();
    },
    async close() { await db.close(); db = undefined; },
    reopen(probeId) { db = openDb(); return db.get(probeId) !== undefined; },
    spec() { return { dir }; },
    attach(spec) { dir = spec.dir; },
    prepare() {}, // the native module loads with require('lmdb')
  };
}

// ---------------------------------------------------------------------------
// better-sqlite3: WAL, synchronous=NORMAL, one transaction with a prepared
// statement for the bulk load, autocommit per single put, iterate() in raw mode;
// embedding as a BLOB in the last column (not read when not selected).

export function sqliteAdapter() {
  const Database = require('better-sqlite3');
  let db, dir, ins, get, all, allEmb, scan;
  const file = () => path.join(dir, 'bench.sqlite');
  const openDb = () => {
    db = new Database(file());
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE IF NOT EXISTS memories (
      id TEXT PRIMARY KEY, content TEXT NOT NULL, metadata TEXT NOT NULL,
      confidence REAL, activation REAL, created_at INTEGER, last_access_at REAL,
      access_count INTEGER, norm REAL, embedding BLOB NOT NULL)`);
    ins = db.prepare('INSERT OR REPLACE INTO memories VALUES (?,?,?,?,?,?,?,?,?,?)');
    const cols = 'id, content, metadata, confidence, activation, created_at, last_access_at, access_count';
    get = db.prepare(`SELECT ${cols} FROM memories WHERE id = ?`).raw(true);
    all = db.prepare(`SELECT ${cols} FROM memories`).raw(true);
    allEmb = db.prepare(`SELECT ${cols}, embedding FROM memories`).raw(true);
    scan = db.prepare('SELECT id, norm, embedding FROM memories').raw(true);
  };
  const row = (r, t) => {
    const c = r.confidence ?? 0.5;
    return [r.id, r.content, JSON.stringify(r.metadata ?? {}), c, r.activation ?? c, r.createdAt ?? t, t, 0,
      Math.fround(norm(r.embedding)), Buffer.from(r.embedding.buffer, r.embedding.byteOffset, r.embedding.byteLength)];
  };
  const mem = (r) => ({
    id: r[0], content: r[1], metadata: JSON.parse(r[2]), confidence: r[3], activation: r[4],
    createdAt: r[5], lastAccessAt: r[6], accessCount: r[7],
  });
  return {
    name: 'sqlite',
    async create(d) { dir = d; openDb(); },
    bulk(total, chunkSize, gen, sw) {
      const t = Date.now();
      sw.start();
      db.transaction(() => {
        for (let s = 0; s < total; s += chunkSize) {
          sw.stop();
          const recs = gen(s, Math.min(total, s + chunkSize));
          sw.start();
          for (const r of recs) ins.run(row(r, t));
        }
      })();
      sw.stop();
    },
    putEach(recs) {
      const lat = new Float64Array(recs.length);
      for (let i = 0; i < recs.length; i++) {
        const t0 = now();
        ins.run(row(recs[i], Date.now()));
        lat[i] = us(t0, now());
      }
      return lat;
    },
    getMany(ids, d = new Digest()) {
      for (let i = 0; i < ids.length; i++) {
        const r = get.get(ids[i]);
        if (r) d.add(mem(r));
        else d.miss();
      }
      return d;
    },
    iterate(withEmb, d = new Digest()) {
      if (withEmb) {
        for (const r of allEmb.iterate()) {
          const m = mem(r);
          m.embedding = f32(r[8], 0, r[8].length >> 2, true);
          d.add(m);
        }
      } else {
        for (const r of all.iterate()) d.add(mem(r));
      }
      return d;
    },
    topk(q, k) {
      const qn = norm(q);
      const top = new TopK(k);
      for (const r of scan.iterate()) {
        const e = f32(r[2], 0, r[2].length >> 2, false);
        let s = 0;
        for (let j = 0; j < e.length; j++) s += q[j] * e[j];
        top.offer(r[0], r[1] === 0 ? 0 : s / (qn * r[1]));
      }
      return top.result();
    },
    close() { db.close(); db = undefined; },
    reopen(probeId) { openDb(); return get.get(probeId) !== undefined; },
    spec() { return { dir }; },
    attach(spec) { dir = spec.dir; },
    // better-sqlite3 loads its native module at the first `new Database`:
    // an in-memory one keeps that load out of the timed open.
    prepare() { new Database(':memory:').close(); },
  };
}

// ---------------------------------------------------------------------------
// classic-level: Buffer values (codec.mjs), batch() per chunk for the bulk load,
// await put() per single put (its only write path), getSync(), iterator nextv().

export function levelAdapter() {
  const { ClassicLevel } = require('classic-level');
  let db, dir;
  const openDb = async () => {
    db = new ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.open();
  };
  async function each(fn) {
    const it = db.iterator();
    try {
      for (;;) {
        const entries = await it.nextv(1000);
        if (entries.length === 0) break;
        for (const [key, value] of entries) fn(key, value);
      }
    } finally {
      await it.close();
    }
  }
  return {
    name: 'level',
    async create(d) { dir = d; await openDb(); },
    async bulk(total, chunkSize, gen, sw) {
      const t = Date.now();
      for (let s = 0; s < total; s += chunkSize) {
        const recs = gen(s, Math.min(total, s + chunkSize));
        sw.start();
        await db.batch(recs.map((r) => ({ type: 'put', key: r.id, value: encode(r, t) })));
        sw.stop();
      }
    },
    async putEach(recs) {
      const lat = new Float64Array(recs.length);
      for (let i = 0; i < recs.length; i++) {
        const t0 = now();
        await db.put(recs[i].id, encode(recs[i], Date.now()));
        lat[i] = us(t0, now());
      }
      return lat;
    },
    getMany(ids, d = new Digest()) {
      for (let i = 0; i < ids.length; i++) {
        const v = db.getSync(ids[i]);
        if (v) d.add(decode(ids[i], v, false));
        else d.miss();
      }
      return d;
    },
    async iterate(withEmb, d = new Digest()) {
      await each((key, value) => d.add(decode(key, value, withEmb)));
      return d;
    },
    async topk(q, k) {
      const qn = norm(q);
      const top = new TopK(k);
      await each((key, value) => top.offer(key, cosineOf(value, q, qn)));
      return top.result();
    },
    async close() { await db.close(); db = undefined; },
    async reopen(probeId) { await openDb(); return db.getSync(probeId) !== undefined; },
    spec() { return { dir }; },
    attach(spec) { dir = spec.dir; },
    prepare() {}, // the native module loads with require('classic-level')
  };
}

export const STORES = ['tierstore', 'tierstore-hot', 'tierstore-warm', 'tierstore-cold', 'lmdb', 'sqlite', 'level'];
export const PEERS = ['lmdb', 'sqlite', 'level'];

export function adapterFor(name) {
  switch (name) {
    case 'tierstore': return tierstoreAdapter('default');
    case 'tierstore-hot': return tierstoreAdapter('hot');
    case 'tierstore-warm': return tierstoreAdapter('warm');
    case 'tierstore-cold': return tierstoreAdapter('cold');
    case 'lmdb': return lmdbAdapter();
    case 'sqlite': return sqliteAdapter();
    case 'level': return levelAdapter();
    default: throw new Error(`unknown store ${name}; known: ${STORES.join(', ')}`);
  }
}

export function tierstoreBuilt() {
  return existsSync(path.join(ROOT, 'dist')) || existsSync(path.join(ROOT, 'build'));
}
