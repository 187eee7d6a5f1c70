// Shared by the suites of the persisted id index (test/index-file.test.ts,
// test/open-reads.test.ts): deterministic records, the expected contents of
// a store (a model built from the inputs, never read back), a child process
// body that opens a store and reads it through every read path, and the
// comparison of what it read with the model.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { MemoryInput, MemoryStore, Tier } from '../../lib/index.js';
import { describeChild, runChild, type ChildResult } from './child.js';
import { toFloat32 } from './random.js';

/** The index fields of stats() (docs/api.md `.stats()`). */
export interface IndexStats {
  indexFileBytes: number;
  indexMemoryBytes: number;
  indexMappedBytes: number;
  indexRebuilt: boolean;
  indexRebuildReason: string;
}

export const INDEX_FILE = 'id.index';
export const REBUILD_REASONS = ['missing', 'unclean', 'damaged', 'stale', 'format'] as const;

export function indexStats(store: MemoryStore): IndexStats & { readOnly: boolean } {
  return store.stats() as unknown as IndexStats & { readOnly: boolean };
}

/** Record `i` of the set named `prefix`: unique content, metadata, embedding and times. */
export function indexRecord(prefix: string, i: number, dims: number, version = 0): MemoryInput {
  const embedding = new Float32Array(dims);
  for (let d = 0; d < dims; d++) embedding[d] = Math.sin(i * 13.7 + d * 0.91 + version * 3.1 + prefix.length);
  return {
    id: i % 11 === 3 ? `${prefix}-ü-${i}-日本` : `${prefix}-${String(i).padStart(5, '0')}`,
    content: `${prefix} record ${i} version ${version} ${'é'.repeat(i % 7)}${i % 29 === 0 ? ' ' + 'long '.repeat(400) : ''}`,
    embedding,
    confidence: ((i * 37 + version) % 101) / 100,
    activation: ((i * 53 + version * 7) % 97) / 96,
    createdAt: 1_700_000_000_000 + i * 1000 + version,
    metadata: { i, v: version, tag: `t${i % 5}`, nested: { even: i % 2 === 0 } },
  };
}

/** The canonical form of a record's data (no tier, no access statistics), as the child writes it. */
export function canonicalOf(r: MemoryInput): string {
  const e = toFloat32(r.embedding);
  const confidence = Math.fround(r.confidence ?? 0.5);
  return JSON.stringify([
    r.content,
    JSON.parse(JSON.stringify(r.metadata ?? {})),
    confidence,
    r.activation === undefined ? confidence : Math.fround(r.activation),
    r.createdAt,
    Array.from(new Uint32Array(e.buffer, e.byteOffset, e.length)),
  ]);
}

/** What a store must hold: id → input, the tier of each id, and ids that must be absent. */
export interface StoreModel {
  records: Map<string, MemoryInput>;
  tiers: Map<string, Tier>;
  deleted: Set<string>;
}

export function newModel(): StoreModel {
  return { records: new Map(), tiers: new Map(), deleted: new Set() };
}

export function modelPut(m: StoreModel, recs: MemoryInput[]): void {
  for (const r of recs) {
    m.records.set(r.id, r);
    m.deleted.delete(r.id);
  }
}

export function modelDelete(m: StoreModel, id: string): void {
  m.records.delete(id);
  m.deleted.add(id);
}

/** The tiers as the store reports them (iterate, which has no side effects), after checking that it holds exactly the model's records. */
export function captureTiers(store: MemoryStore, m: StoreModel): void {
  const seen = new Map<string, Tier>();
  for (const r of store.iterate({ tier: 'all', includeEmbeddings: true })) {
    expect(seen.has(r.id), `${r.id} yielded once`).toBe(false);
    seen.set(r.id, r.tier);
    const want = m.records.get(r.id);
    expect(want, `${r.id} is a record the model holds`).toBeDefined();
    expect(canonicalOf({ ...r, embedding: r.embedding! }), `${r.id} as written`).toBe(canonicalOf(want!));
  }
  expect(seen.size, 'the store holds every record of the model').toBe(m.records.size);
  m.tiers = seen;
}

export function tierCounts(m: StoreModel): Record<Tier, number> {
  const c: Record<Tier, number> = { hot: 0, warm: 0, cold: 0 };
  for (const t of m.tiers.values()) c[t]++;
  return c;
}

/**
 * The child: opens args.p with args.options and reads everything (iterate
 * all with embeddings, get and has of every id of args.ids, list pages of
 * every tier, recall of the top rows, counts), reports stats() and the file
 * names of the directory, closes; with args.reopen, opens once more with the
 * same options and reports that open's stats() too.
 */
export const READ_ALL = String.raw`
  const canon = (m) => JSON.stringify([m.content, m.metadata, m.confidence, m.activation, m.createdAt,
    Array.from(new Uint32Array(m.embedding.buffer, m.embedding.byteOffset, m.embedding.length))]);
  const pickStats = (st) => ({ indexRebuilt: st.indexRebuilt, indexRebuildReason: st.indexRebuildReason,
    indexFileBytes: st.indexFileBytes, indexMemoryBytes: st.indexMemoryBytes, indexMappedBytes: st.indexMappedBytes,
    readOnly: st.readOnly, counts: { hot: st.counts.hot, warm: st.counts.warm, cold: st.counts.cold, total: st.counts.total } });
  let stage = 'open';
  try {
    const s = ts.open(args.p, args.options);
    stage = 'stats';
    const stats = pickStats(s.stats());
    const filesAtOpen = fs.readdirSync(args.p).sort();
    stage = 'iterate';
    const all = [];
    for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) all.push([m.id, m.tier, canon(m)]);
    stage = 'list';
    const listed = [];
    for (const tier of ['hot', 'warm', 'cold']) {
      let cursor;
      for (let page = 0; page < 100000; page++) {
        const res = cursor === undefined ? s.list({ tier, limit: 37, includeEmbeddings: true }) : s.list({ tier, limit: 37, cursor, includeEmbeddings: true });
        for (const m of res.memories) listed.push([m.id, m.tier, canon(m)]);
        cursor = res.pagination.nextCursor;
        if (cursor === undefined) break;
      }
    }
    stage = 'recall';
    const q = Array.from({ length: s.dimensions }, (_, d) => Math.cos(d + 0.5));
    const hits = all.length === 0 ? [] : s.recall(q, { k: Math.min(25, all.length), includeEmbeddings: true }).map((h) => [h.id, h.memory.tier, canon(h.memory)]);
    stage = 'get';
    const gets = {};
    for (const id of args.ids) {
      const m = s.get(id, { includeEmbedding: true });
      gets[id] = m === undefined ? null : [m.tier, canon(m), s.has(id)];
      if (m === undefined && s.has(id)) gets[id] = 'has() true but get() undefined';
    }
    stage = 'counts';
    const c = s.counts();
    const counts = { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
    stage = 'close';
    s.close();
    let again = null;
    if (args.reopen) {
      stage = 'reopen';
      const r = ts.open(args.p, args.options);
      again = pickStats(r.stats());
      r.close();
    }
    emit('RESULT', { ok: true, stats, filesAtOpen, all, listed, hits, gets, counts, again });
  } catch (e) {
    emit('RESULT', { ok: false, stage, ...errorInfo(e) });
  }
`;

export type ReadStats = IndexStats & { readOnly: boolean; counts: Record<Tier | 'total', number> };

export interface ReadResult {
  ok: boolean;
  stage?: string;
  code?: string;
  message?: string;
  stats: ReadStats;
  filesAtOpen: string[];
  all: Array<[string, Tier, string]>;
  listed: Array<[string, Tier, string]>;
  hits: Array<[string, Tier, string]>;
  gets: Record<string, [Tier, string, boolean] | null | string>;
  counts: Record<Tier | 'total', number>;
  again: ReadStats | null;
}

/** Runs READ_ALL on the store at `p`; fails the test when the child dies or the read throws. */
export function readInChild(p: string, model: StoreModel, options: Record<string, unknown> = {}, reopen = false, what = p): ReadResult {
  const ids = [...model.records.keys(), ...model.deleted];
  const r: ChildResult = runChild(READ_ALL, { p, options, ids, reopen });
  expect(r.status === 0 && r.signal === null && r.result !== undefined, `${what}: the reading child ran to the end: ${describeChild(r)}`).toBe(true);
  const res = r.result as ReadResult;
  expect(res.ok, `${what}: reading failed at ${res.stage}: ${res.code}: ${res.message}`).toBe(true);
  return res;
}

/** Every read path gave exactly the model: each record once, bit-exact, in its tier; deleted ids absent. */
export function expectModelAnswers(res: ReadResult, model: StoreModel, what: string): void {
  const want = new Map([...model.records].map(([id, r]) => [id, [model.tiers.get(id), canonicalOf(r)]]));
  const sortById = (rows: Array<[string, Tier, string]>) => [...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const ids = res.all.map((r) => r[0]);
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  expect(twice, `${what}: ids iterated more than once`).toEqual([]);
  const missing = [...want.keys()].filter((id) => !ids.includes(id));
  const extra = ids.filter((id) => !want.has(id));
  expect({ missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, `${what}: iterate('all') yields exactly the written ids`).toEqual({ missing: [], extra: [] });
  const wrong = res.all.filter(([id, tier, c]) => JSON.stringify([tier, c]) !== JSON.stringify(want.get(id))).map((r) => r[0]);
  expect(wrong.slice(0, 10), `${what}: records iterated with another tier or other data than written (${wrong.length})`).toEqual([]);
  expect(sortById(res.listed), `${what}: list() pages of every tier give what iteration gives`).toEqual(sortById(res.all));
  const wrongGets = Object.entries(res.gets).filter(([id, g]) => {
    if (!want.has(id)) return g !== null;
    return JSON.stringify(g) !== JSON.stringify([...want.get(id)!, true]);
  }).map(([id, g]) => `${id}: ${JSON.stringify(g).slice(0, 120)}`);
  expect(wrongGets.slice(0, 10), `${what}: get()/has() of written and deleted ids (${wrongGets.length} wrong)`).toEqual([]);
  for (const [id, tier, c] of res.hits) expect(JSON.stringify([tier, c]), `${what}: recall hit ${id}`).toBe(JSON.stringify(want.get(id)));
  expect(res.hits.length, `${what}: recall returned its top rows`).toBe(Math.min(25, want.size));
  const c = { hot: 0, warm: 0, cold: 0 };
  for (const [t] of want.values()) c[t as Tier]++;
  expect(res.counts, `${what}: counts()`).toEqual({ ...c, total: want.size });
}

export function expectIndexStatsShape(st: IndexStats, what: string): void {
  for (const k of ['indexFileBytes', 'indexMemoryBytes', 'indexMappedBytes'] as const) {
    expect(typeof st[k], `${what}: stats().${k} is a number`).toBe('number');
    expect(Number.isInteger(st[k]) && st[k] >= 0, `${what}: stats().${k} = ${st[k]} is a whole number ≥ 0`).toBe(true);
  }
  expect(typeof st.indexRebuilt, `${what}: stats().indexRebuilt is a boolean`).toBe('boolean');
  expect(typeof st.indexRebuildReason, `${what}: stats().indexRebuildReason is a string`).toBe('string');
  if (st.indexRebuilt) expect(REBUILD_REASONS, `${what}: the rebuild reason`).toContain(st.indexRebuildReason);
  else expect(st.indexRebuildReason, `${what}: no reason when not rebuilt`).toBe('');
}

/** Size of the index file of the store at `p`, or -1 when there is none. */
export function indexFileSize(p: string): number {
  const f = path.join(p, INDEX_FILE);
  return fs.existsSync(f) ? fs.statSync(f).size : -1;
}
