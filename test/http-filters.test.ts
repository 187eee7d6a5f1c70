// Filters over HTTP: POST /api/v1/recall's `filter` and the filter parameters
// of GET /api/v1/memories return exactly the records a brute force over the
// whole store selects (every tier, paged by cursor and by offset), metadata
// values in the query read as JSON or text, a cursor keeps its filter, and
// every bad filter is a 400 in the three-part format naming the wire path,
// with nothing changed. Also the one function from a library error's field to
// the wire path (wireField). Budget: about 10 s.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { MemoryInput, MemoryStore } from '../lib/index.js';
import { startServer } from '../lib/server.js';
import type { RunningServer } from '../lib/server.js';
import { wireField, wireMessage } from '../lib/server/errors.js';
import { metadataValue } from '../lib/server/filters.js';
import { call, expectError } from './helpers/http.js';
import { mulberry32 } from './helpers/random.js';
import { useScratch } from './helpers/store.js';

const DIMS = 8;
const N = 600;
const T0 = 1_700_000_000_000;
const scratch = useScratch('all');

let store: MemoryStore;
let server: RunningServer;
let url: string;
const records: MemoryInput[] = [];

const TAGS = ['red', 'blue', 'green', 'Red', '3'];

function recordOf(i: number, rng: () => number): MemoryInput {
  const metadata: Record<string, unknown> = {};
  const r = rng();
  if (r < 0.4) metadata.tag = TAGS[i % TAGS.length];
  else if (r < 0.7) metadata.tag = [TAGS[i % TAGS.length], TAGS[(i * 7 + 1) % TAGS.length]];
  else if (r < 0.8) metadata.tag = null;
  // else: no tag key at all
  if (i % 3 === 0) metadata.n = i % 4; // numbers 0..3
  if (i % 5 === 0) metadata.n = String(i % 4); // the string "0".."3"
  if (i % 4 === 0) metadata.flag = i % 8 === 0;
  metadata.user = i % 2 === 0 ? 'alice' : 'bob smith';
  return {
    id: `rec-${String(i).padStart(4, '0')}`,
    content: `content ${i}`,
    embedding: Array.from({ length: DIMS }, () => rng() * 2 - 1),
    // Some confidences sit exactly on a float32 boundary of the thresholds used below.
    confidence: i % 10 === 0 ? Math.fround(0.7) : rng(),
    activation: rng(),
    createdAt: T0 + (i * 7919) % 100_000,
    metadata,
  };
}

beforeAll(async () => {
  const rng = mulberry32(77);
  for (let i = 0; i < N; i++) records.push(recordOf(i, rng));
  store = scratch.open(scratch.storePath(), { dimensions: DIMS, hotCapacity: 200, warmCapacity: 200 });
  store.putMany(records);
  store.migrate();
  const counts = store.counts();
  expect(counts.hot > 0 && counts.warm > 0 && counts.cold > 0, JSON.stringify(counts)).toBe(true);
  server = await startServer({ store, port: 0 });
  url = server.url;
});

afterEach(() => {
  // Every test reads only: the store holds what it held.
  expect(store.counts().total).toBe(N);
});

// ---------------------------------------------------------------------------
// The brute force

interface Filter {
  created_after?: number;
  created_before?: number;
  min_confidence?: number;
  min_activation?: number;
  metadata?: Record<string, unknown>;
}

function scalarMatches(stored: unknown, wanted: unknown): boolean {
  const eq = (a: unknown) => a === wanted && (typeof a !== 'object' || a === null);
  return Array.isArray(stored) ? stored.some(eq) : eq(stored);
}

function matches(m: MemoryInput, f: Filter): boolean {
  const createdAt = m.createdAt!;
  if (f.created_after !== undefined && !(createdAt >= f.created_after)) return false;
  if (f.created_before !== undefined && !(createdAt < f.created_before)) return false;
  if (f.min_confidence !== undefined && !(Math.fround(m.confidence!) >= Math.fround(f.min_confidence))) return false;
  if (f.min_activation !== undefined && !(Math.fround(m.activation!) >= Math.fround(f.min_activation))) return false;
  for (const [key, want] of Object.entries(f.metadata ?? {})) {
    const md = m.metadata as Record<string, unknown>;
    if (!Object.hasOwn(md, key)) return false;
    const wanted = Array.isArray(want) ? want : [want];
    if (!wanted.some((w) => scalarMatches(md[key], w))) return false;
  }
  return true;
}

function expectedIds(f: Filter): string[] {
  return records.filter((m) => matches(m, f)).map((m) => m.id).sort();
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.fround(a[i]!);
    const y = Math.fround(b[i]!);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

const FILTERS: Filter[] = [
  {},
  { created_after: T0 + 30_000 },
  { created_before: T0 + 20_000 },
  { created_after: T0 + 10_000, created_before: T0 + 60_000 },
  { min_confidence: 0.7 },
  { min_confidence: 0.7000000001 }, // rounds to the same float32 as 0.7
  { min_activation: 0.5 },
  { metadata: { tag: 'red' } },
  { metadata: { tag: ['red', 'blue'] } },
  { metadata: { tag: null } },
  { metadata: { tag: '3' } },
  { metadata: { n: 3 } },
  { metadata: { n: '3' } },
  { metadata: { n: [0, '0'] } },
  { metadata: { flag: true } },
  { metadata: { flag: false, user: 'alice' } },
  { metadata: { user: 'bob smith' }, min_activation: 0.3, created_after: T0 + 5000 },
  { metadata: { absent: null } },
  { metadata: { tag: 'nothing-has-this' } },
  { created_after: T0 + 50_000, created_before: T0 + 50_000 },
];

/** The list query of a filter: its parameters, metadata.KEY repeated for any-of. */
function queryOf(f: Filter): string {
  const p = new URLSearchParams();
  for (const k of ['created_after', 'created_before', 'min_confidence', 'min_activation'] as const) {
    if (f[k] !== undefined) p.append(k, String(f[k]));
  }
  for (const [key, want] of Object.entries(f.metadata ?? {})) {
    for (const w of Array.isArray(want) ? want : [want]) p.append(`metadata.${key}`, typeof w === 'string' && /^(true|false|null|-?[0-9].*|".*")$/.test(w) ? JSON.stringify(w) : String(w));
  }
  return p.toString();
}

async function listAll(query: string, tier: string, by: 'cursor' | 'offset', limit: number): Promise<string[]> {
  const ids: string[] = [];
  let offset = 0;
  let cursor: string | undefined;
  for (;;) {
    const paging = by === 'cursor' ? (cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`) : `&offset=${offset}`;
    const r = await call(url, 'GET', `/api/v1/memories?tier=${tier}&limit=${limit}${query === '' ? '' : `&${query}`}${paging}`);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    expect(r.body.tier_counts.total, 'tier_counts stay unfiltered').toBe(N);
    for (const m of r.body.memories) ids.push(m.id);
    offset += r.body.count;
    if (by === 'cursor') {
      if (!r.body.pagination.has_more) return ids;
      cursor = r.body.pagination.next_cursor;
    } else if (r.body.count < limit) {
      return ids;
    }
  }
}

describe('filtered list and recall match a brute force', () => {
  it('GET /api/v1/memories: every filter, every tier, paged by cursor and by offset', async () => {
    for (const f of FILTERS) {
      const query = queryOf(f);
      const want = expectedIds(f);
      const byCursor = await listAll(query, 'all', 'cursor', 97);
      expect(new Set(byCursor).size, `${query}: each record once`).toBe(byCursor.length);
      expect([...byCursor].sort(), query).toEqual(want);
      expect([...(await listAll(query, 'all', 'offset', 1000))].sort(), `${query} by offset`).toEqual(want);
      const perTier: string[] = [];
      for (const tier of ['hot', 'warm', 'cold']) perTier.push(...(await listAll(query, tier, 'cursor', 1000)));
      expect(perTier.sort(), `${query} per tier`).toEqual(want);
    }
    // At least some filters select something and some not everything.
    const sizes = FILTERS.map((f) => expectedIds(f).length);
    expect(sizes.filter((n) => n > 0 && n < N).length).toBeGreaterThan(12);
  });

  it('POST /api/v1/recall: the top k among the matching records only', async () => {
    const rng = mulberry32(5);
    for (const f of FILTERS) {
      const want = expectedIds(f);
      const query = Array.from({ length: DIMS }, () => rng() * 2 - 1);
      const all = await call(url, 'POST', '/api/v1/recall', { embedding: query, k: N, filter: f });
      expect(all.status, JSON.stringify(all.body).slice(0, 300)).toBe(200);
      expect(all.body.hits.map((h: { id: string }) => h.id).sort(), JSON.stringify(f)).toEqual(want);
      const k = 7;
      const top = await call(url, 'POST', '/api/v1/recall', { embedding: query, k, filter: f, tier: 'all' });
      const scored = records.filter((m) => matches(m, f))
        .map((m) => ({ id: m.id, score: cosine(query, m.embedding as number[]) }))
        .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
      expect(top.body.count).toBe(Math.min(k, want.length));
      const cut = scored[Math.min(k, scored.length) - 1]?.score ?? 0;
      for (const [i, hit] of top.body.hits.entries()) {
        expect(want.includes(hit.id), `${hit.id} matches`).toBe(true);
        expect(hit.score, `hit ${i}`).toBeCloseTo(scored[i]!.score, 5);
        expect(hit.score).toBeGreaterThanOrEqual(cut - 1e-6);
      }
    }
  });

  it('metadata values in the query: JSON for numbers, true, false, null and "quoted" strings, text otherwise', async () => {
    expect(metadataValue('3')).toBe(3);
    expect(metadataValue('-1.5e2')).toBe(-150);
    expect(metadataValue('"3"')).toBe('3');
    expect(metadataValue('true')).toBe(true);
    expect(metadataValue('false')).toBe(false);
    expect(metadataValue('null')).toBe(null);
    expect(metadataValue('"null"')).toBe('null');
    expect(metadataValue('red')).toBe('red');
    expect(metadataValue('007')).toBe('007');
    expect(metadataValue(' 3')).toBe(' 3');
    expect(metadataValue('"unterminated')).toBe('"unterminated');
    expect(metadataValue('')).toBe('');
    const ids = async (q: string) => (await listAll(q, 'all', 'cursor', 1000)).sort();
    expect(await ids('metadata.n=3')).toEqual(expectedIds({ metadata: { n: 3 } }));
    expect(await ids('metadata.n=%223%22')).toEqual(expectedIds({ metadata: { n: '3' } }));
    expect(await ids('metadata.user=bob+smith')).toEqual(expectedIds({ metadata: { user: 'bob smith' } }));
    expect(await ids('metadata.user=bob%20smith&metadata.user=alice')).toEqual(expectedIds({ metadata: { user: ['bob smith', 'alice'] } }));
    expect(await ids('metadata.tag=null')).toEqual(expectedIds({ metadata: { tag: null } }));
    expect(await ids('metadata.flag=true&metadata.user=alice')).toEqual(expectedIds({ metadata: { flag: true, user: 'alice' } }));
  });

  it('a cursor keeps its filter: continuing it under another filter is a 400', async () => {
    const first = await call(url, 'GET', '/api/v1/memories?tier=all&limit=10&metadata.tag=red');
    expect(first.body.pagination.has_more).toBe(true);
    const cursor = encodeURIComponent(first.body.pagination.next_cursor);
    expect((await call(url, 'GET', `/api/v1/memories?tier=all&limit=10&metadata.tag=red&cursor=${cursor}`)).status).toBe(200);
    expectError(await call(url, 'GET', `/api/v1/memories?tier=all&limit=10&metadata.tag=blue&cursor=${cursor}`), 400, 'INVALID_ARGUMENT', /cursor/);
    expectError(await call(url, 'GET', `/api/v1/memories?tier=all&limit=10&cursor=${cursor}`), 400, 'INVALID_ARGUMENT', /cursor/);
  });
});

describe('bad filters are a 400 naming the wire path, and change nothing', () => {
  it('list query parameters', async () => {
    const list = (q: string) => call(url, 'GET', `/api/v1/memories?${q}`);
    for (const p of ['created_after', 'created_before', 'min_confidence', 'min_activation']) {
      for (const v of ['abc', '', '1,5', '0x10', 'Infinity', ' 1']) {
        expectError(await list(`${p}=${encodeURIComponent(v)}`), 400, 'INVALID_ARGUMENT', new RegExp(`^query parameter ${p} must be`));
      }
      expectError(await list(`${p}=1&${p}=2`), 400, 'INVALID_ARGUMENT', new RegExp(`query parameter ${p}`));
    }
    expectError(await list('created_after=1e400'), 400, 'INVALID_ARGUMENT', /^query parameter created_after must be a finite number/);
    expectError(await list('metadata.n=1e400'), 400, 'INVALID_ARGUMENT', /^query parameter metadata\.n must be .*finite/);
    expectError(await list('min_activaton=0.5'), 400, 'INVALID_ARGUMENT', /unknown query parameter "min_activaton"/);
    expectError(await list('metadata.=x'), 400, 'INVALID_ARGUMENT', /unknown query parameter "metadata\."/);
    expectError(await list('createdAfter=5'), 400, 'INVALID_ARGUMENT', /unknown query parameter "createdAfter"/);
  });

  it('recall body filter', async () => {
    const q = Array.from({ length: DIMS }, (_, i) => i + 1);
    const recall = (filter: unknown) => call(url, 'POST', '/api/v1/recall', { embedding: q, filter });
    expectError(await recall({ created_after: 'x' }), 400, 'INVALID_ARGUMENT', /^body\.filter\.created_after must be of type number/);
    expectError(await recall({ min_activation: true }), 400, 'INVALID_ARGUMENT', /body\.filter\.min_activation/);
    expectError(await recall({ createdAfter: 5 }), 400, 'INVALID_ARGUMENT', /body\.filter has an unknown field "createdAfter"/);
    expectError(await recall([]), 400, 'INVALID_ARGUMENT', /body\.filter must be of type object/);
    expectError(await recall('x'), 400, 'INVALID_ARGUMENT', /body\.filter/);
    expectError(await recall({ metadata: [] }), 400, 'INVALID_ARGUMENT', /body\.filter\.metadata must be of type object/);
    expectError(await recall({ metadata: { tags: [] } }), 400, 'INVALID_ARGUMENT', /^body\.filter\.metadata\.tags is an empty array/);
    expectError(await recall({ metadata: { tags: ['a', { b: 1 }] } }), 400, 'INVALID_ARGUMENT', /^body\.filter\.metadata\.tags\[1\] must be a string/);
    expectError(await recall({ metadata: { someKey: { x: 1 } } }), 400, 'INVALID_ARGUMENT', /^body\.filter\.metadata\.someKey must be/);
    expectError(await recall({ metadata: { tags: [[1]] } }), 400, 'INVALID_ARGUMENT', /^body\.filter\.metadata\.tags\[0\]/);
    // The all-zero query is refused before any filter applies.
    expectError(await call(url, 'POST', '/api/v1/recall', { embedding: new Array(DIMS).fill(0), filter: { metadata: { tag: 'red' } } }),
      400, 'INVALID_ARGUMENT', /^body\.embedding is all zeros/);
  });
});

describe('wireField: a library field as the wire names it', () => {
  it('snake_cases API names, keeps metadata keys, and maps the roots per request shape', () => {
    expect(wireField('filter.createdAfter', 'recall')).toBe('filter.created_after');
    expect(wireField('filter.createdAfter', 'list')).toBe('created_after');
    expect(wireField('filter.metadata.someKey[2]', 'recall')).toBe('filter.metadata.someKey[2]');
    expect(wireField('filter.metadata.someKey', 'list')).toBe('metadata.someKey');
    expect(wireField('filter.metadata.a.minConfidence', 'list')).toBe('metadata.a.minConfidence');
    expect(wireField('memories[3].embedding', 'create')).toBe('memories[3].embedding');
    expect(wireField('memories[3].createdAt', 'create')).toBe('memories[3].created_at');
    expect(wireField('memories[0].metadata.fooBar', 'create')).toBe('memories[0].metadata.fooBar');
    expect(wireField('memory.createdAt', 'create')).toBe('created_at');
    expect(wireField('memory.embedding[4]', 'create')).toBe('embedding[4]');
    expect(wireField('memory', 'create')).toBe('');
    expect(wireField('query', 'recall')).toBe('embedding');
    expect(wireField('query[2]', 'recall')).toBe('embedding[2]');
    expect(wireField('minConfidence', 'recall')).toBe('min_confidence');
    expect(wireField('k', 'recall')).toBe('k');
    expect(wireField('cursor', 'list')).toBe('cursor');
  });

  it('names the field in the message by its wire path', () => {
    expect(wireMessage({ message: 'recallAsync(): options.filter.createdAfter must be a finite number, got NaN', field: 'filter.createdAfter' }, 'recall'))
      .toBe('body.filter.created_after must be a finite number, got NaN');
    expect(wireMessage({ message: 'list(): options.filter.createdAfter must be a finite number, got NaN', field: 'filter.createdAfter' }, 'list'))
      .toBe('query parameter created_after must be a finite number, got NaN');
    expect(wireMessage({ message: 'memories[3].embedding has 2 values; the store has 4 dimensions', field: 'memories[3].embedding' }, 'create'))
      .toBe('body.memories[3].embedding has 2 values; the store has 4 dimensions');
    expect(wireMessage({ message: 'memory.createdAt must be an integer', field: 'memory.createdAt' }, 'create'))
      .toBe('body.created_at must be an integer');
    expect(wireMessage({ message: 'list(): pass either options.cursor or options.offset, not both', field: 'cursor' }, 'list'))
      .toBe('query parameter cursor: pass either cursor or offset, not both');
    expect(wireMessage({ message: 'put(): the store is closed' }, 'create')).toBe('the store is closed');
  });
});
