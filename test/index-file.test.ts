// The persisted id index (docs/durability.md, docs/api.md `.stats()`): a
// store closed cleanly writes `id.index`, and the next open reads it instead
// of scanning the warm and cold tiers. Where it cannot be trusted — missing,
// left by a store that was not closed cleanly, damaged, another store's, an
// older copy of the same store's, or absent from a store made before it
// existed — the open rebuilds it from the data (a writable open then writes
// it, a read-only one keeps it in memory and writes nothing), and every
// answer is the data's, never the index's: each record once, bit-exact, in
// its tier. stats() says whether the last open rebuilt it and why.
//
// The stores are read in child processes, so that a native crash on a bad
// index fails the case instead of the test runner.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryInput, MemoryStore, Tier } from '../lib/index.js';
import { REPO_ROOT, ScriptChild, spawnAsync } from './helpers/child.js';
import {
  canonicalOf,
  captureTiers,
  expectIndexStatsShape,
  expectModelAnswers,
  INDEX_FILE,
  indexFileSize,
  indexRecord,
  indexStats,
  modelDelete,
  modelPut,
  newModel,
  readInChild,
  type StoreModel,
} from './helpers/index-store.js';
import { expectTierStoreError, Scratch, useScratch } from './helpers/store.js';

const DIMS = 8;
const OPTIONS = { dimensions: DIMS, hotCapacity: 30, warmCapacity: 60 };

/** The ids of `store` in `tier`, in iteration order. */
function idsIn(store: MemoryStore, tier: Tier): string[] {
  return [...store.iterate({ tier })].map((m) => m.id);
}

/**
 * Fills the store at `p` with `n` records of set `prefix` in all three tiers
 * (several cold segments), then upserts, deletes and moves records of every
 * tier; records its tiers in `model` and closes it cleanly.
 */
function buildStore(scratch: Scratch, p: string, prefix: string, n: number, model: StoreModel = newModel()): StoreModel {
  const s = scratch.open(p, OPTIONS);
  const recs = Array.from({ length: n }, (_, i) => indexRecord(prefix, i, DIMS));
  for (let at = 0; at < n; at += 40) {
    s.putMany(recs.slice(at, at + 40));
    modelPut(model, recs.slice(at, at + 40));
  }
  s.migrate();
  changeEveryTier(s, model, prefix, 1);
  captureTiers(s, model);
  const c = s.counts();
  expect(c.hot > 0 && c.warm > 0 && c.cold > 0, `records in every tier: ${JSON.stringify(c)}`).toBe(true);
  s.close();
  return model;
}

/** An upsert, a delete and a move in each tier, and a migration. */
function changeEveryTier(s: MemoryStore, model: StoreModel, prefix: string, version: number): void {
  for (const tier of ['hot', 'warm', 'cold'] as const) {
    const ids = idsIn(s, tier);
    expect(ids.length, `records in ${tier}`).toBeGreaterThan(3);
    const i = Number(/(\d+)(-日本)?$/.exec(ids[1]!)![1]);
    const up = { ...indexRecord(prefix, i, DIMS, version), id: ids[1]! };
    s.put(up);
    modelPut(model, [up]);
    expect(s.delete(ids[2]!)).toBe(true);
    modelDelete(model, ids[2]!);
    expect(s.move(ids[3]!, tier === 'cold' ? 'hot' : 'cold')).toBe(true);
  }
  s.migrate();
}

/** A record as JSON can carry it to a child (the embedding as a plain array of its float32 values). */
function plainRecord(r: MemoryInput): MemoryInput {
  return { ...r, embedding: Array.from(r.embedding) };
}

/** size:sha1 of each file of `dir` (the lock file excluded). */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    if (f === 'LOCK') continue;
    const bytes = fs.readFileSync(path.join(dir, f));
    out[f] = `${bytes.length}:${createHash('sha1').update(bytes).digest('hex')}`;
  }
  return out;
}

function flipBit(file: string, offset: number, bit: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ (1 << bit);
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

function zeroRange(file: string, from: number, to: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, Buffer.alloc(to - from), 0, to - from, from);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs `body` for each case, collecting failures instead of stopping at the
 * first, so one run names every case that misbehaves.
 */
async function eachCase<T extends { name: string }>(cases: T[], body: (c: T) => void): Promise<void> {
  expect(cases.length, 'cases were generated').toBeGreaterThan(0);
  const problems: string[] = [];
  for (const c of cases) {
    try {
      body(c);
    } catch (e) {
      problems.push(`${c.name}: ${String((e as Error).message).split('\n').slice(0, 6).join(' | ')}`);
    }
    // Each case runs a child synchronously: let the worker answer vitest's RPC.
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(problems, `${problems.length} of ${cases.length} cases misbehaved`).toEqual([]);
}

/**
 * Reads the store at `dir` (writable) in a child: the open rebuilt the index
 * for `reason` (one of `reasons`), every answer is the model's, and the
 * second open, after the first one's clean close, trusts the written index.
 */
function expectRebuiltThenTrusted(dir: string, model: StoreModel, reasons: string[], what: string): void {
  const res = readInChild(dir, model, {}, true, what);
  expectIndexStatsShape(res.stats, what);
  expect(res.stats.indexRebuilt, `${what}: the open rebuilt the index`).toBe(true);
  expect(reasons, `${what}: the rebuild reason`).toContain(res.stats.indexRebuildReason);
  expectModelAnswers(res, model, what);
  expect(res.again!.indexRebuilt, `${what}: after the rebuilding open closed cleanly, the next open uses the index (reason ${JSON.stringify(res.again!.indexRebuildReason)})`).toBe(false);
  expect(res.again!.indexRebuildReason).toBe('');
  expect(indexFileSize(dir), `${what}: ${INDEX_FILE} written`).toBeGreaterThan(0);
  expect(res.again!.indexFileBytes, `${what}: indexFileBytes is the size of ${INDEX_FILE}`).toBe(indexFileSize(dir));
}

describe('stats() of the id index', () => {
  const scratch = useScratch();

  it('a new store has no index and did not rebuild one; a clean close writes it and the next open reads it', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, OPTIONS);
    const fresh = indexStats(s);
    expectIndexStatsShape(fresh, 'a new store');
    expect(fresh.indexRebuilt, 'creating a store is not a rebuild').toBe(false);
    expect(fresh.indexRebuildReason).toBe('');
    expect(fs.existsSync(path.join(p, INDEX_FILE)), `a store never closed has no ${INDEX_FILE}`).toBe(false);
    expect(fresh.indexFileBytes, 'indexFileBytes is 0 without a file').toBe(0);
    expect(fresh.indexMappedBytes, 'nothing mapped without a file').toBe(0);
    s.close();

    const model = buildStore(scratch, p, 'st', 300);
    const size = indexFileSize(p);
    expect(size, `a clean close writes ${INDEX_FILE}`).toBeGreaterThan(0);

    const res = readInChild(p, model, {}, true, 'reopen after a clean close');
    expectIndexStatsShape(res.stats, 'reopen after a clean close');
    expect(res.stats.indexRebuilt, `reason ${JSON.stringify(res.stats.indexRebuildReason)}`).toBe(false);
    expect(res.stats.indexRebuildReason).toBe('');
    expect(res.stats.indexFileBytes, 'indexFileBytes is the size of the file').toBe(size);
    expect(res.stats.indexMemoryBytes + res.stats.indexMappedBytes, 'the index of 300 records takes memory or a mapping').toBeGreaterThan(0);
    expect(res.stats.indexMappedBytes, 'no more of the file mapped than it holds').toBeLessThanOrEqual(size);
    expectModelAnswers(res, model, 'reopen after a clean close');
    expect(res.again!.indexRebuilt).toBe(false);

    // The same in this process, read-only.
    const ro = scratch.open(p, { readOnly: true });
    const st = indexStats(ro);
    expectIndexStatsShape(st, 'read-only reopen');
    expect(st.indexRebuilt).toBe(false);
    expect(st.indexFileBytes).toBe(size);
    ro.close();
  });
});

describe('an unclean shutdown: the index is rebuilt', () => {
  const scratch = useScratch();

  const WRITER = String.raw`
    const s = ts.open(args.p, {});
    const ops = args.ops;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op.k === 'putMany') s.putMany(op.recs);
      else if (op.k === 'delete') s.delete(op.id);
      else if (op.k === 'move') s.move(op.id, op.tier);
      else if (op.k === 'migrate') s.migrate();
      else if (op.k === 'flush') s.flush();
      fs.writeSync(1, 'A ' + i + '\n');
    }
    const tiers = {};
    for (const m of s.iterate()) tiers[m.id] = m.tier;
    fs.writeSync(1, 'DONE ' + JSON.stringify(tiers) + '\n');
    setInterval(() => {}, 1 << 30); // killed here, the store open
  `;

  it('after SIGKILL of a writer: rebuilt (unclean), every acknowledged record once and exact; then trusted again', async () => {
    const p = scratch.storePath();
    const model = buildStore(scratch, p, 'kw', 240);
    expect(indexFileSize(p), `the clean close wrote ${INDEX_FILE}`).toBeGreaterThan(0);
    const s = scratch.open(p, { readOnly: true });
    const hot = idsIn(s, 'hot');
    const warm = idsIn(s, 'warm');
    const cold = idsIn(s, 'cold');
    s.close();
    type Op = { k: string; recs?: MemoryInput[]; id?: string; tier?: Tier };
    const fresh = Array.from({ length: 120 }, (_, i) => indexRecord('kw-new', i, DIMS));
    const ops: Op[] = [
      { k: 'putMany', recs: fresh.slice(0, 50) }, // past hotCapacity: migrations
      { k: 'delete', id: hot[4]! },
      { k: 'delete', id: warm[4]! },
      { k: 'delete', id: cold[4]! },
      { k: 'putMany', recs: [{ ...indexRecord('kw', 900, DIMS, 5), id: warm[5]! }, { ...indexRecord('kw', 901, DIMS, 5), id: cold[5]! }] },
      { k: 'move', id: cold[6]!, tier: 'warm' },
      { k: 'move', id: warm[6]!, tier: 'cold' },
      { k: 'migrate' },
      { k: 'putMany', recs: fresh.slice(50) },
      { k: 'delete', id: fresh[3]!.id },
      { k: 'flush' },
      { k: 'putMany', recs: [{ ...indexRecord('kw', 902, DIMS, 6), id: hot[7]! }] },
    ];
    for (const op of ops) {
      if (op.recs) modelPut(model, op.recs);
      if (op.k === 'delete') modelDelete(model, op.id!);
    }
    const child = new ScriptChild(WRITER, { p, ops: ops.map((op) => (op.recs ? { ...op, recs: op.recs.map(plainRecord) } : op)) });
    const done = await child.waitFor((l) => l.some((x) => x.startsWith('DONE ')), 120_000);
    expect(done, `the writer finished its operations: ${child.stderr}`).toBe(true);
    const exit = await child.kill('SIGKILL');
    expect(exit.signal, `the writer was killed, not failed: ${child.stderr}`).toBe('SIGKILL');
    expect(child.lines.filter((l) => l.startsWith('A ')).length, 'every operation acknowledged').toBe(ops.length);
    // The tiers as the writer saw them last.
    model.tiers = new Map(Object.entries(JSON.parse(child.lines.find((l) => l.startsWith('DONE '))!.slice(5)) as Record<string, Tier>));

    const ro = readInChild(p, model, { readOnly: true }, false, 'read-only open after the kill');
    expect(ro.stats.indexRebuilt, 'a read-only open after the kill rebuilt the index').toBe(true);
    expect(ro.stats.indexRebuildReason).toBe('unclean');
    expectModelAnswers(ro, model, 'read-only open after the kill');

    expectRebuiltThenTrusted(p, model, ['unclean'], 'writable open after the kill');
  }, 120_000);
});

describe('a damaged, missing or foreign index is rebuilt from the data', () => {
  const scratch = new Scratch();
  afterAll(() => scratch.cleanup());
  let pristine: string;
  let model: StoreModel;
  let indexBytes: Buffer;

  beforeAll(() => {
    pristine = scratch.storePath();
    model = buildStore(scratch, pristine, 'dm', 400);
    indexBytes = fs.readFileSync(path.join(pristine, INDEX_FILE));
    expect(indexBytes.length, `${INDEX_FILE} written by the clean close`).toBeGreaterThan(64);
  }, 60_000);

  /** A copy of the pristine store with `damage` applied to its index file. */
  function damagedCopy(damage: (file: string) => void): string {
    const dir = path.join(scratch.dir(), 'db');
    fs.cpSync(pristine, dir, { recursive: true });
    damage(path.join(dir, INDEX_FILE));
    return dir;
  }

  function run(name: string, reasons: string[], damage: (file: string) => void): void {
    const dir = damagedCopy(damage);
    try {
      expectRebuiltThenTrusted(dir, model, reasons, name);
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  }

  it('the undamaged copy is read, not rebuilt', () => {
    const dir = damagedCopy(() => {});
    const res = readInChild(dir, model, {}, false, 'undamaged copy');
    expect(res.stats.indexRebuilt, `reason ${JSON.stringify(res.stats.indexRebuildReason)}`).toBe(false);
    expectModelAnswers(res, model, 'undamaged copy');
  });

  it(`${INDEX_FILE} deleted: rebuilt (missing)`, () => {
    run('deleted', ['missing'], (f) => fs.rmSync(f));
  });

  it(`${INDEX_FILE} truncated, to 0 bytes, to a header's length and within the body: rebuilt (damaged)`, async () => {
    const n = indexBytes.length;
    const lengths = [...new Set([0, 1, 8, 32, 64, 120, 127, 128, 129, 256, Math.floor(n / 2), n - 8, n - 1])].filter((l) => l >= 0 && l < n);
    await eachCase(lengths.map((l) => ({ name: `truncated ${n} → ${l} bytes`, l })), ({ name, l }) => {
      run(name, ['damaged'], (f) => fs.truncateSync(f, l));
    });
  }, 120_000);

  it(`${INDEX_FILE} zeroed, whole or one 4 KiB page: rebuilt (damaged)`, async () => {
    const n = indexBytes.length;
    const pages = [...new Set([0, Math.floor(n / 2 / 4096), Math.floor((n - 1) / 4096)])];
    const cases = [
      { name: 'zeroed whole', from: 0, to: n },
      ...pages.map((pg) => ({ name: `page ${pg} zeroed`, from: pg * 4096, to: Math.min(n, (pg + 1) * 4096) })),
    ];
    await eachCase(cases, ({ name, from, to }) => run(name, ['damaged'], (f) => zeroRange(f, from, to)));
  }, 120_000);

  it(`a bit of ${INDEX_FILE} flipped, in the header, the body and the tail: rebuilt (damaged)`, async () => {
    const n = indexBytes.length;
    const at = new Set<number>();
    for (let i = 0; i < 26; i++) at.add(Math.min(n - 1, i * 5 + (i % 4))); // the header (its first 128 bytes)
    for (let k = 1; k < 10; k++) at.add(Math.floor((n * k) / 10)); // the body
    for (const back of [1, 2, 4, 8, 16, 32]) if (n - back >= 0) at.add(n - back); // the tail
    const cases = [...at].sort((a, b) => a - b).map((o, i) => ({ name: `bit ${i % 8} of byte ${o} of ${n} flipped`, o, bit: i % 8 }));
    await eachCase(cases, ({ name, o, bit }) => run(name, ['damaged'], (f) => flipBit(f, o, bit)));
  }, 180_000);

  it(`${INDEX_FILE} of another store with the same dimensions: rebuilt, the answers this store's`, () => {
    const other = scratch.storePath();
    // The other store shares some ids (in other tiers, with other data) and has its own.
    const so = scratch.open(other, OPTIONS);
    const shared = [...model.records.keys()].slice(0, 150).map((id, i) => ({ ...indexRecord('dm', 5000 + i, DIMS, 9), id }));
    so.putMany(shared);
    so.putMany(Array.from({ length: 260 }, (_, i) => indexRecord('other', i, DIMS)));
    so.migrate();
    so.close();
    expect(indexFileSize(other)).toBeGreaterThan(0);
    run('another store\'s index', ['stale', 'damaged'], (f) => fs.copyFileSync(path.join(other, INDEX_FILE), f));
  });

  it(`${INDEX_FILE} from an earlier clean close of the same store: rebuilt, the answers the latest data's`, () => {
    const p = scratch.storePath();
    const m = buildStore(scratch, p, 'old', 300);
    const saved = fs.readFileSync(path.join(p, INDEX_FILE));
    // More writes: new records (migrations), deletes, upserts and moves in every tier, a compaction.
    const s = scratch.open(p, OPTIONS);
    const more = Array.from({ length: 150 }, (_, i) => indexRecord('old-more', i, DIMS));
    for (let at = 0; at < more.length; at += 50) {
      s.putMany(more.slice(at, at + 50));
      modelPut(m, more.slice(at, at + 50));
    }
    changeEveryTier(s, m, 'old', 2);
    for (const id of idsIn(s, 'cold').slice(10, 30)) {
      expect(s.delete(id)).toBe(true);
      modelDelete(m, id);
    }
    s.compact();
    captureTiers(s, m);
    s.close();
    expect(fs.readFileSync(path.join(p, INDEX_FILE)).equals(saved), 'the later close wrote another index').toBe(false);
    fs.writeFileSync(path.join(p, INDEX_FILE), saved);
    expectRebuiltThenTrusted(p, m, ['stale', 'damaged'], 'an older index of the same store');
  }, 60_000);
});

describe('read-only opens rebuild in memory and write nothing', () => {
  const scratch = useScratch();

  it(`${INDEX_FILE} deleted: every read-only open rebuilds it, changes no file, answers right; a writable open writes it`, () => {
    const p = scratch.storePath();
    const model = buildStore(scratch, p, 'ro', 300);
    fs.rmSync(path.join(p, INDEX_FILE));
    const before = fingerprint(p);
    for (const round of [1, 2]) {
      const what = `read-only open ${round}`;
      const res = readInChild(p, model, { readOnly: true }, false, what);
      expect(res.stats.readOnly).toBe(true);
      expect(res.stats.indexRebuilt, `${what}: rebuilt`).toBe(true);
      expect(res.stats.indexRebuildReason, what).toBe('missing');
      expect(res.stats.indexFileBytes, `${what}: no index file`).toBe(0);
      expect(res.stats.indexMappedBytes, `${what}: nothing mapped`).toBe(0);
      expect(res.stats.indexMemoryBytes, `${what}: the rebuilt index is held in memory`).toBeGreaterThan(0);
      expect(res.filesAtOpen, `${what}: no ${INDEX_FILE} created`).not.toContain(INDEX_FILE);
      expectModelAnswers(res, model, what);
      expect(fingerprint(p), `${what}: the store's files are unchanged`).toEqual(before);
    }
    expectRebuiltThenTrusted(p, model, ['missing'], 'writable open after the read-only ones');
    const res = readInChild(p, model, { readOnly: true }, false, 'read-only open after the writable one');
    expect(res.stats.indexRebuilt, 'a read-only open uses the index the writable open wrote').toBe(false);
  });

  it('a damaged index: a read-only open rebuilds it and leaves the damaged file as it is', () => {
    const p = scratch.storePath();
    const model = buildStore(scratch, p, 'rd', 200);
    const f = path.join(p, INDEX_FILE);
    flipBit(f, Math.floor(fs.statSync(f).size / 2), 3);
    const before = fingerprint(p);
    for (const round of [1, 2]) {
      const res = readInChild(p, model, { readOnly: true }, false, `read-only open ${round}`);
      expect(res.stats.indexRebuilt).toBe(true);
      expect(res.stats.indexRebuildReason).toBe('damaged');
      expectModelAnswers(res, model, `read-only open ${round}`);
      expect(fingerprint(p), 'the store\'s files are unchanged').toEqual(before);
    }
  });
});

describe('after a clean close, damaged warm or cold data is found when read, not at open', () => {
  const scratch = useScratch();

  /** Flips a byte inside every copy of `needle` in the store's files named by `match`; returns the files changed. */
  function damageContent(dir: string, match: RegExp, needle: string): string[] {
    const changed: string[] = [];
    for (const name of fs.readdirSync(dir)) {
      if (!match.test(name)) continue;
      const file = path.join(dir, name);
      const bytes = fs.readFileSync(file);
      for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
        flipBit(file, at + 3, 5);
        if (!changed.includes(name)) changed.push(name);
      }
    }
    return changed;
  }

  it.each([
    { tier: 'warm' as const, files: /^warm/ },
    { tier: 'cold' as const, files: /^cold-.*\.seg$/ },
  ])('a $tier record: the open uses the index; get, iterate, list and move are CORRUPTION naming the file; verify() lists it', ({ tier, files }) => {
    const p = scratch.storePath();
    const model = buildStore(scratch, p, `da${tier}`, 240);
    const victim = [...model.tiers].filter(([, t]) => t === tier).map(([id]) => id)[7]!;
    const other = [...model.tiers].filter(([id, t]) => t === tier && id !== victim).map(([id]) => id)[0]!;
    const content = model.records.get(victim)!.content;
    const changed = damageContent(p, files, content.slice(0, content.indexOf(' version') + 10));
    expect(changed.length, `the content of ${victim} found in a ${tier} file`).toBeGreaterThan(0);

    const s = scratch.open(p);
    const st = indexStats(s);
    expect(st.indexRebuilt, `the open used the index (reason ${JSON.stringify(st.indexRebuildReason)})`).toBe(false);
    const named = (e: unknown) => changed.some((f) => String((e as Error).message).includes(f));
    const err = expectTierStoreError(() => s.get(victim), 'CORRUPTION', `get(${victim})`);
    expect(named(err), `get's CORRUPTION names ${changed.join(' or ')}: ${err.message}`).toBe(true);
    expect(s.get(other, { includeEmbedding: true }), 'an undamaged record of the same tier reads right').toBeDefined();
    expect(canonicalOf({ ...s.get(other, { includeEmbedding: true })!, embedding: s.get(other, { includeEmbedding: true })!.embedding! })).toBe(canonicalOf(model.records.get(other)!));
    const ie = expectTierStoreError(() => [...s.iterate({ tier: 'all', includeEmbeddings: true })], 'CORRUPTION', 'iterate');
    expect(named(ie), `iterate's CORRUPTION names the file: ${ie.message}`).toBe(true);
    const le = expectTierStoreError(() => {
      for (let cursor: string | undefined, page = 0; page < 1000; page++) {
        const res = cursor === undefined ? s.list({ tier, limit: 50 }) : s.list({ tier, limit: 50, cursor });
        cursor = res.pagination.nextCursor;
        if (cursor === undefined) break;
      }
    }, 'CORRUPTION', 'list');
    expect(named(le), `list's CORRUPTION names the file: ${le.message}`).toBe(true);
    const report = s.verify();
    expect(report.damaged.map((d) => [d.tier, d.id]), 'verify() lists the damaged record').toEqual([[tier, victim]]);
    expect(changed.map((f) => path.join(path.resolve(p), f)), 'verify() names the file').toContain(report.damaged[0]!.file);
    expect(report.records, 'verify() read every other record').toBe(model.records.size - 1);
    const me = expectTierStoreError(() => s.move(victim, 'hot'), 'CORRUPTION', 'moving the damaged record');
    expect(named(me), `the migration's CORRUPTION names the file: ${me.message}`).toBe(true);
    s.close();
  });
});

describe('a store made before the index existed', () => {
  const scratch = useScratch();
  // test/fixtures/pre-index-store: a store written by the build before the
  // persisted index (each file gzipped): indexRecord('pre', i, 8) for i < 150
  // put with hotCapacity 30 and warmCapacity 60, migrated, one record of each
  // tier deleted, compacted and closed. pre-index-store.json holds the ids
  // deleted and the tier of each record then.
  const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'pre-index-store');

  it('opens read-only with the index rebuilt, answers right; a writable open writes the index', () => {
    const meta = JSON.parse(fs.readFileSync(`${FIXTURE}.json`, 'utf8')) as { count: number; tiers: Record<string, Tier>; deleted: string[] };
    const p = path.join(scratch.dir(), 'db');
    fs.mkdirSync(p);
    for (const f of fs.readdirSync(FIXTURE)) fs.writeFileSync(path.join(p, f.replace(/\.gz$/, '')), gunzipSync(fs.readFileSync(path.join(FIXTURE, f))));
    expect(fs.existsSync(path.join(p, INDEX_FILE)), `the fixture has no ${INDEX_FILE}`).toBe(false);
    const model = newModel();
    modelPut(model, Array.from({ length: meta.count }, (_, i) => indexRecord('pre', i, DIMS)));
    for (const id of meta.deleted) modelDelete(model, id);
    model.tiers = new Map(Object.entries(meta.tiers));
    const before = fingerprint(p);
    const ro = readInChild(p, model, { readOnly: true }, false, 'read-only open of the older store');
    expect(ro.stats.indexRebuilt).toBe(true);
    expect(['format', 'missing']).toContain(ro.stats.indexRebuildReason);
    expectModelAnswers(ro, model, 'read-only open of the older store');
    expect(fingerprint(p), 'the read-only open changed no file').toEqual(before);
    expectRebuiltThenTrusted(p, model, ['format', 'missing'], 'writable open of the older store');
  });
});

// ---------------------------------------------------------------------------
// A crash at each system call of writing the index at close.

const straceWorks = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;
const straceRequired = process.env.TIERSTORE_REQUIRE_STRACE === '1' || process.env.CI === 'true';
if (!straceWorks && !straceRequired) {
  console.warn('NOT RUN: the kills at each system call of writing the index (strace is missing or ptrace is refused here); CI requires them');
}

// Opens the store (records in all tiers), changes it in every tier, then
// closes it; a marker file write separates the close from what came before.
const CLOSER = String.raw`
const fs = require('node:fs');
const { open } = require(process.env.TIERSTORE_REPO);
const [dir, markerFile, opsFile] = process.argv.slice(2);
const ops = JSON.parse(fs.readFileSync(opsFile, 'utf8'));
const marker = fs.openSync(markerFile, 'w');
const s = open(dir, {});
for (const op of ops) {
  if (op.k === 'putMany') s.putMany(op.recs);
  else if (op.k === 'delete') s.delete(op.id);
  else if (op.k === 'move') s.move(op.id, op.tier);
  else if (op.k === 'migrate') s.migrate();
}
const tiers = {};
for (const m of s.iterate()) tiers[m.id] = m.tier;
fs.writeSync(1, 'ACKED ' + JSON.stringify(tiers) + '\n');
fs.writeSync(marker, '@@close@@');
s.close();
fs.writeSync(marker, '@@closed@@');
fs.writeSync(1, 'CLOSED\n');
`;

/** The system calls that name a file: those strace -P can select by path (so counts of them are counts of calls on these files). */
const PATH_SYSCALLS = /^(openat|open|creat|write|pwrite64|pwritev2?|writev|fsync|fdatasync|sync_file_range|ftruncate|truncate|fallocate|rename|renameat2?|unlink|unlinkat|close|mmap|read|pread64|fstat|newfstatat|statx|lseek|flock|fcntl|fadvise64|link|linkat)$/;

/** A traced call's name and the store files it names (relative to `dir`): what must match between two runs. */
function callSignature(line: string, dir: string): string {
  const name = /^\d+\s+(\w+)\(/.exec(line)?.[1] ?? '?';
  const args = line.replace(/ <unfinished \.\.\.>$/, '').replace(/\)\s+=\s+[^=]*$/, ')'); // the call, not its result
  const files = [...args.matchAll(/<(\/[^>]*)>|"(\/[^"]*)"/g)].map((m) => m[1] ?? m[2]!).map((f) => (f.startsWith(dir) ? `DIR${f.slice(dir.length)}` : f));
  return `${name} ${files.join(' ')}`;
}

describe('a crash at every system call of writing the index and the manifest at close', () => {
  const scratch = useScratch('all');
  const needStrace = () => {
    expect(straceWorks, 'strace is required here (TIERSTORE_REQUIRE_STRACE=1 or CI=true): apt-get install strace, allow ptrace').toBe(true);
  };

  it.skipIf(!straceWorks && !straceRequired)('the store reopens with every acknowledged record once and exact, and closes cleanly after', async () => {
    needStrace();
    const base = scratch.dir();
    const pristine = path.join(base, 'pristine');
    const model = buildStore(scratch, pristine, 'sk', 200);
    const s = scratch.open(pristine, { readOnly: true });
    const hot = idsIn(s, 'hot');
    const warm = idsIn(s, 'warm');
    const cold = idsIn(s, 'cold');
    s.close();
    const ops = [
      { k: 'putMany', recs: Array.from({ length: 45 }, (_, i) => indexRecord('sk-new', i, DIMS)) },
      { k: 'delete', id: hot[3]! },
      { k: 'delete', id: warm[3]! },
      { k: 'delete', id: cold[3]! },
      { k: 'putMany', recs: [{ ...indexRecord('sk', 700, DIMS, 3), id: cold[4]! }, { ...indexRecord('sk', 701, DIMS, 3), id: warm[4]! }] },
      { k: 'move', id: cold[5]!, tier: 'hot' },
      { k: 'migrate' },
    ];
    for (const op of ops) {
      if (op.recs) modelPut(model, op.recs);
      if (op.k === 'delete') modelDelete(model, op.id!);
    }
    const opsFile = path.join(base, 'ops.json');
    fs.writeFileSync(opsFile, JSON.stringify(ops.map((op) => (op.recs ? { ...op, recs: op.recs.map(plainRecord) } : op))));
    const scriptFile = path.join(base, 'closer.cjs');
    fs.writeFileSync(scriptFile, CLOSER);

    // The files of the index and the manifest, and the directory (its fsync).
    const pathArgs = (dir: string, markerFile: string) =>
      [markerFile, dir, ...[INDEX_FILE, 'MANIFEST'].flatMap((f) => [f, `${f}.tmp`, `${f}.new`]).map((f) => path.join(dir, f))].flatMap((f) => ['-P', f]);
    const copy = (name: string) => {
      const dir = path.join(base, name);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(pristine, dir, { recursive: true });
      return dir;
    };
    const traced = async (dir: string, extra: string[]) => {
      const markerFile = path.join(base, `${path.basename(dir)}.marker`);
      const traceFile = path.join(base, `${path.basename(dir)}.trace`);
      const r = await spawnAsync('strace', ['-f', '-y', '-qq', '-s', '48', ...pathArgs(dir, markerFile), ...extra, '-o', traceFile, process.execPath, scriptFile, dir, markerFile, opsFile], {
        timeout: 120_000,
        env: { ...process.env, TIERSTORE_REPO: REPO_ROOT },
      });
      return { r, trace: fs.readFileSync(traceFile, 'utf8') };
    };

    // 1. A whole run: the calls after the close marker on these paths, each
    // with its ordinal among the same thread's calls of that name.
    const whole = copy('whole');
    const { r, trace } = await traced(whole, []);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('CLOSED');
    const counts = new Map<string, number>();
    const points: Array<{ name: string; when: number; line: string }> = [];
    let closing = false;
    for (const raw of trace.split('\n')) {
      const m = /^(\d+)\s+(\w+)\((.*)$/.exec(raw);
      if (!m || raw.includes('<unfinished') || raw.includes('resumed>')) continue;
      const [, tid, name, rest] = m;
      const key = `${tid}:${name}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (name === 'write' && rest!.includes('@@close@@')) closing = true;
      else if (name === 'write' && rest!.includes('@@closed@@')) closing = false;
      else if (closing && PATH_SYSCALLS.test(name!) && !/^(read|pread64|fstat|newfstatat|statx|lseek|flock|fcntl)$/.test(name!)) {
        points.push({ name: name!, when: counts.get(key)!, line: raw });
      }
    }
    const listing = `calls after the marker:\n${points.map((p) => p.line).join('\n')}`;
    for (const f of [INDEX_FILE, 'MANIFEST']) {
      expect(points.some((p) => p.line.includes(f)), `the close wrote ${f}: ${listing}`).toBe(true);
      expect(points.some((p) => /^rename/.test(p.name) && p.line.includes(`/${f}"`)), `the close renamed a new ${f} into place: ${listing}`).toBe(true);
    }
    expect(points.some((p) => /^f(data)?sync$/.test(p.name)), `the close synced what it wrote: ${listing}`).toBe(true);

    // 2. For each call: a run killed at that call, then the store read back.
    const problems: string[] = [];
    for (const [i, pt] of points.entries()) {
      const dir = copy(`kill-${i}`);
      const what = `SIGKILL at ${pt.name} #${pt.when} (${pt.line.slice(0, 160)})`;
      try {
        const k = await traced(dir, ['-e', `inject=${pt.name}:signal=SIGKILL:when=${pt.when}`]);
        expect(k.r.stdout, `${what}: the changes were acknowledged before the close`).toContain('ACKED');
        expect(k.r.stdout, `${what}: the process died in the close`).not.toContain('CLOSED');
        const last = k.trace.split('\n').filter((l) => /^\d+\s+\w+\(/.test(l)).pop() ?? '';
        expect(callSignature(last, dir), `${what}: the kill landed on the intended call: ${last.slice(0, 200)}`).toBe(callSignature(pt.line, whole));
        const acked = k.r.stdout.split('\n').find((l) => l.startsWith('ACKED '));
        const tiers = new Map(Object.entries(JSON.parse(acked!.slice(6)) as Record<string, Tier>));
        const res = readInChild(dir, model, {}, true, what);
        expectModelAnswers(res, { ...model, tiers }, what);
        expect(res.again!.indexRebuilt, `${what}: the next open after a clean close uses the index`).toBe(false);
      } catch (e) {
        problems.push(String((e as Error).message).split('\n').slice(0, 4).join(' | '));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    expect(problems, `${problems.length} of ${points.length} kill points misbehaved`).toEqual([]);
  }, 300_000);
});
