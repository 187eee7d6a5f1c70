// Errors (DESIGN §3): every bad input gets a TierStoreError (an Error) with
// its documented code and a message, and a bad call changes nothing: the
// store holds exactly what it held before (checked by a full snapshot, with
// embeddings and access statistics, before and after each bad call).
// Also: closed stores, read-only stores, dimension checks on reopen, and the
// directory lock between processes (stale locks of dead processes are taken
// over).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, TierStoreError } from '../lib/index.js';
import type { MemoryInput, MemoryStore, OpenOptions, Tier } from '../lib/index.js';
import { describeChild, runChild, StoreHolder } from './helpers/child.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import {
  expectRejection,
  expectTierStoreError,
  iterateAll,
  pickCounts,
  Scratch,
  seedEachTier,
  snapshot,
  useScratch,
  type Snapshot,
} from './helpers/store.js';

const DIMS = 5;
const MAX_CONTENT = 1000;

function good(id: string, seed = 1): MemoryInput {
  const rng = mulberry32(seed);
  return {
    id,
    content: `content of ${id} — ñ 日本 🚀`,
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: 0.5,
    metadata: { ok: true },
  };
}

/** A record that is `good(id)` with some fields replaced (or removed, with undefined + `omit`). */
function bad(over: Record<string, unknown>, id = 'new-record', omit: string[] = []): MemoryInput {
  const r: Record<string, unknown> = { ...good(id, 99), ...over };
  for (const k of omit) delete r[k];
  return r as unknown as MemoryInput;
}

class Klass {
  a = 1;
}
const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;
const cyclicInArray: Record<string, unknown> = { list: [] as unknown[] };
(cyclicInArray.list as unknown[]).push(cyclicInArray);
const sparse: unknown[] = [];
sparse[2] = 1;

type Code = 'INVALID_ARGUMENT' | 'DIMENSION_MISMATCH' | 'CONTENT_TOO_LARGE';
interface Case {
  name: string;
  code: Code;
  call: (s: MemoryStore) => unknown;
}

// Ids that exist in the fixture store (see beforeAll), one per tier.
const EXISTING: Record<Tier, string> = { hot: 'h-0', warm: 'w-0', cold: 'c-0' };

const putCases: Array<[string, Code, MemoryInput]> = [
  // embedding: wrong length
  ['embedding Float32Array of 4 values', 'DIMENSION_MISMATCH', bad({ embedding: new Float32Array(4) })],
  ['embedding Float32Array of 6 values', 'DIMENSION_MISMATCH', bad({ embedding: new Float32Array(6) })],
  ['embedding number[] of 4 values', 'DIMENSION_MISMATCH', bad({ embedding: [1, 2, 3, 4] })],
  ['embedding number[] of 6 values', 'DIMENSION_MISMATCH', bad({ embedding: [1, 2, 3, 4, 5, 6] })],
  ['embedding empty array', 'DIMENSION_MISMATCH', bad({ embedding: [] })],
  ['embedding Float64Array of 6 values', 'DIMENSION_MISMATCH', bad({ embedding: new Float64Array(6) })],
  ['embedding of 2×dimensions Float32Array', 'DIMENSION_MISMATCH', bad({ embedding: new Float32Array(2 * DIMS) })],
  // embedding: non-finite values
  ['embedding with NaN (Float32Array)', 'INVALID_ARGUMENT', bad({ embedding: Float32Array.of(0, 1, NaN, 0, 0) })],
  ['embedding with NaN (number[])', 'INVALID_ARGUMENT', bad({ embedding: [NaN, 0, 0, 0, 0] })],
  ['embedding with Infinity (number[])', 'INVALID_ARGUMENT', bad({ embedding: [0, 0, 0, 0, Infinity] })],
  ['embedding with -Infinity (Float64Array)', 'INVALID_ARGUMENT', bad({ embedding: Float64Array.of(0, -Infinity, 0, 0, 0) })],
  ['embedding with 1e39 (Float64Array: Infinity as float32)', 'INVALID_ARGUMENT', bad({ embedding: Float64Array.of(0, 0, 1e39, 0, 0) })],
  ['embedding with -3.5e38 (number[]: -Infinity as float32)', 'INVALID_ARGUMENT', bad({ embedding: [0, 0, 0, -3.5e38, 0] })],
  // embedding: wrong type (INVALID_ARGUMENT, never DIMENSION_MISMATCH)
  ['embedding a string of length 5', 'INVALID_ARGUMENT', bad({ embedding: '12345' })],
  ['embedding a string of length 3', 'INVALID_ARGUMENT', bad({ embedding: 'abc' })],
  ['embedding a plain object with length 5', 'INVALID_ARGUMENT', bad({ embedding: { length: 5 } })],
  ['embedding an array-like object', 'INVALID_ARGUMENT', bad({ embedding: { 0: 1, 1: 2, 2: 3, 3: 4, 4: 5, length: 5 } })],
  ['embedding an object of wrong length', 'INVALID_ARGUMENT', bad({ embedding: { a: 1 } })],
  ['embedding an Int32Array of 5', 'INVALID_ARGUMENT', bad({ embedding: new Int32Array(5) })],
  ['embedding a Uint8Array of 4×dimensions bytes', 'INVALID_ARGUMENT', bad({ embedding: new Uint8Array(4 * DIMS) })],
  ['embedding an ArrayBuffer of 4×dimensions bytes', 'INVALID_ARGUMENT', bad({ embedding: new ArrayBuffer(4 * DIMS) })],
  ['embedding a DataView', 'INVALID_ARGUMENT', bad({ embedding: new DataView(new ArrayBuffer(4 * DIMS)) })],
  ['embedding a BigInt64Array of 5', 'INVALID_ARGUMENT', bad({ embedding: new BigInt64Array(5) })],
  ['embedding a number', 'INVALID_ARGUMENT', bad({ embedding: 5 })],
  ['embedding null', 'INVALID_ARGUMENT', bad({ embedding: null })],
  ['embedding missing', 'INVALID_ARGUMENT', bad({}, 'new-record', ['embedding'])],
  ['embedding number[] containing a string', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, '3', 4, 5] })],
  ['embedding number[] containing null', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, null, 4, 5] })],
  ['embedding number[] with a hole', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, , 4, 5] })], // eslint-disable-line no-sparse-arrays
  ['embedding string[] of wrong length', 'INVALID_ARGUMENT', bad({ embedding: ['a'] })],
  ['embedding number[] containing a bigint', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, 3n, 4, 5] })],
  // a wrong type in one field comes before a length check of another (DESIGN: "before any length check")
  ["embedding of 4 values and confidence 'x'", 'INVALID_ARGUMENT', bad({ embedding: [1, 2, 3, 4], confidence: 'x' })],
  ["embedding of 6 values and activation '1'", 'INVALID_ARGUMENT', bad({ embedding: new Float32Array(6), activation: '1' })],
  ['embedding of 4 values and createdAt a string', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, 3, 4], createdAt: '1' })],
  ['embedding of 4 values and metadata a Date', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, 3, 4], metadata: new Date() })],
  ['embedding of 4 values and content a number', 'INVALID_ARGUMENT', bad({ embedding: [1, 2, 3, 4], content: 7 })],
  ['content too large and embedding a string', 'INVALID_ARGUMENT', bad({ content: 'a'.repeat(MAX_CONTENT + 1), embedding: 'bad' })],
  ['content too large and embedding [1, "x"] (a string element)', 'INVALID_ARGUMENT', bad({ content: 'a'.repeat(MAX_CONTENT + 1), embedding: [1, 'x'] })],
  ['content too large and metadata with a BigInt', 'INVALID_ARGUMENT', bad({ content: 'a'.repeat(MAX_CONTENT + 1), metadata: { n: 1n } })],
  // id
  ['empty id', 'INVALID_ARGUMENT', bad({ id: '' })],
  ['id of 1025 ASCII bytes', 'INVALID_ARGUMENT', bad({ id: 'a'.repeat(1025) })],
  ["id of 400 '€' (1200 UTF-8 bytes, 400 UTF-16 units)", 'INVALID_ARGUMENT', bad({ id: '€'.repeat(400) })],
  ["id of 342 '€' (1026 UTF-8 bytes)", 'INVALID_ARGUMENT', bad({ id: '€'.repeat(342) })],
  ["id of 257 '🚀' (1028 UTF-8 bytes, 514 UTF-16 units)", 'INVALID_ARGUMENT', bad({ id: '🚀'.repeat(257) })],
  ['id a number', 'INVALID_ARGUMENT', bad({ id: 42 })],
  ['id null', 'INVALID_ARGUMENT', bad({ id: null })],
  ['id missing', 'INVALID_ARGUMENT', bad({}, 'x', ['id'])],
  ['id a String object', 'INVALID_ARGUMENT', bad({ id: new String('boxed') })],
  ['id an array', 'INVALID_ARGUMENT', bad({ id: ['a'] })],
  ['id with a lone high surrogate', 'INVALID_ARGUMENT', bad({ id: 'a\ud800' })],
  ['id with a lone low surrogate', 'INVALID_ARGUMENT', bad({ id: 'a\udc00b' })],
  ['id with surrogates in the wrong order', 'INVALID_ARGUMENT', bad({ id: '\udc00\ud800' })],
  // content
  ['content a number', 'INVALID_ARGUMENT', bad({ content: 5 })],
  ['content null', 'INVALID_ARGUMENT', bad({ content: null })],
  ['content missing', 'INVALID_ARGUMENT', bad({}, 'new-record', ['content'])],
  ['content a Buffer', 'INVALID_ARGUMENT', bad({ content: Buffer.from('abc') })],
  ['content with a lone surrogate', 'INVALID_ARGUMENT', bad({ content: 'x\udc00y' })],
  ['content with a lone surrogate at the end', 'INVALID_ARGUMENT', bad({ content: 'abc\ud83d' })],
  [`content of ${MAX_CONTENT + 1} ASCII bytes`, 'CONTENT_TOO_LARGE', bad({ content: 'a'.repeat(MAX_CONTENT + 1) })],
  ["content of 334 '€' (1002 bytes in 334 UTF-16 units)", 'CONTENT_TOO_LARGE', bad({ content: '€'.repeat(334) })],
  ["content of 251 '🚀' (1004 bytes)", 'CONTENT_TOO_LARGE', bad({ content: '🚀'.repeat(251) })],
  // confidence / activation
  ['confidence -0.1', 'INVALID_ARGUMENT', bad({ confidence: -0.1 })],
  ['confidence 1.1', 'INVALID_ARGUMENT', bad({ confidence: 1.1 })],
  ['confidence NaN', 'INVALID_ARGUMENT', bad({ confidence: NaN })],
  ['confidence Infinity', 'INVALID_ARGUMENT', bad({ confidence: Infinity })],
  ["confidence '0.5'", 'INVALID_ARGUMENT', bad({ confidence: '0.5' })],
  ['confidence null', 'INVALID_ARGUMENT', bad({ confidence: null })],
  ['activation -0.1', 'INVALID_ARGUMENT', bad({ activation: -0.1 })],
  ['activation 1.0000001', 'INVALID_ARGUMENT', bad({ activation: 1.0000001 })],
  ['activation NaN', 'INVALID_ARGUMENT', bad({ activation: NaN })],
  ['activation -Infinity', 'INVALID_ARGUMENT', bad({ activation: -Infinity })],
  ["activation '1'", 'INVALID_ARGUMENT', bad({ activation: '1' })],
  // createdAt
  ['createdAt 1.5', 'INVALID_ARGUMENT', bad({ createdAt: 1.5 })],
  ['createdAt 1700000000000.25', 'INVALID_ARGUMENT', bad({ createdAt: 1_700_000_000_000.25 })],
  ['createdAt NaN', 'INVALID_ARGUMENT', bad({ createdAt: NaN })],
  ['createdAt Infinity', 'INVALID_ARGUMENT', bad({ createdAt: Infinity })],
  ['createdAt beyond the range of Date', 'INVALID_ARGUMENT', bad({ createdAt: 8.64e15 + 1 })],
  ['createdAt below the range of Date', 'INVALID_ARGUMENT', bad({ createdAt: -8.64e15 - 1 })],
  ['createdAt 1e20', 'INVALID_ARGUMENT', bad({ createdAt: 1e20 })],
  ['createdAt a Date object', 'INVALID_ARGUMENT', bad({ createdAt: new Date() })],
  ["createdAt a string", 'INVALID_ARGUMENT', bad({ createdAt: '2024-01-01' })],
  // metadata: not a plain object
  ['metadata a Date', 'INVALID_ARGUMENT', bad({ metadata: new Date() })],
  ['metadata an array', 'INVALID_ARGUMENT', bad({ metadata: [1, 2] })],
  ['metadata a class instance', 'INVALID_ARGUMENT', bad({ metadata: new Klass() })],
  ['metadata a Map', 'INVALID_ARGUMENT', bad({ metadata: new Map([['a', 1]]) })],
  ['metadata null', 'INVALID_ARGUMENT', bad({ metadata: null })],
  ['metadata a string', 'INVALID_ARGUMENT', bad({ metadata: '{"a":1}' })],
  ['metadata a number', 'INVALID_ARGUMENT', bad({ metadata: 5 })],
  ['metadata a RegExp', 'INVALID_ARGUMENT', bad({ metadata: /x/ })],
  // metadata: does not survive JSON.parse(JSON.stringify(x)) unchanged
  ['metadata with NaN', 'INVALID_ARGUMENT', bad({ metadata: { a: NaN } })],
  ['metadata with Infinity', 'INVALID_ARGUMENT', bad({ metadata: { a: Infinity } })],
  ['metadata with an undefined value', 'INVALID_ARGUMENT', bad({ metadata: { a: undefined } })],
  ['metadata with a BigInt', 'INVALID_ARGUMENT', bad({ metadata: { a: 1n } })],
  ['metadata with a nested Date', 'INVALID_ARGUMENT', bad({ metadata: { when: { d: new Date(0) } } })],
  ['metadata with a nested Map', 'INVALID_ARGUMENT', bad({ metadata: { m: new Map() } })],
  ['metadata with a nested class instance', 'INVALID_ARGUMENT', bad({ metadata: { k: new Klass() } })],
  ['metadata with a function', 'INVALID_ARGUMENT', bad({ metadata: { f: () => 1 } })],
  ['metadata with a symbol', 'INVALID_ARGUMENT', bad({ metadata: { s: Symbol('s') } })],
  ['metadata with a cycle', 'INVALID_ARGUMENT', bad({ metadata: cyclic })],
  ['metadata with a cycle through an array', 'INVALID_ARGUMENT', bad({ metadata: cyclicInArray })],
  ['metadata with undefined in an array', 'INVALID_ARGUMENT', bad({ metadata: { list: [1, undefined] } })],
  ['metadata with NaN in an array', 'INVALID_ARGUMENT', bad({ metadata: { list: [1, [NaN]] } })],
  ['metadata with a sparse array', 'INVALID_ARGUMENT', bad({ metadata: { list: sparse } })],
  ['metadata with a lone surrogate in a value', 'INVALID_ARGUMENT', bad({ metadata: { s: 'x\ud800' } })],
  ['metadata with a lone surrogate in a key', 'INVALID_ARGUMENT', bad({ metadata: { ['k\udfff']: 1 } })],
  ['metadata with a lone surrogate deep inside', 'INVALID_ARGUMENT', bad({ metadata: { a: [{ b: ['\udc00'] }] } })],
  ['metadata with a toJSON method', 'INVALID_ARGUMENT', bad({ metadata: { t: { toJSON: () => 'x' } } })],
  // upserts of existing ids in each tier must not disturb the existing copy
  ['upsert of the cold id with a wrong-length embedding', 'DIMENSION_MISMATCH', bad({ embedding: [1, 2] }, EXISTING.cold)],
  ['upsert of the warm id with a NaN embedding', 'INVALID_ARGUMENT', bad({ embedding: [NaN, 1, 1, 1, 1] }, EXISTING.warm)],
  ['upsert of the hot id with too large content', 'CONTENT_TOO_LARGE', bad({ content: 'z'.repeat(MAX_CONTENT + 1) }, EXISTING.hot)],
  ['upsert of the cold id with bad metadata', 'INVALID_ARGUMENT', bad({ metadata: { d: new Date() } }, EXISTING.cold)],
  ['upsert of the warm id with a bad confidence', 'INVALID_ARGUMENT', bad({ confidence: 2 }, EXISTING.warm)],
];

/** putMany of 5 records where the 3rd is `badRecord`: new ids plus upserts of existing ones around it. */
function batchWithBadThird(badRecord: MemoryInput): MemoryInput[] {
  return [good('batch-new-1', 11), { ...good(EXISTING.cold, 12), content: 'overwritten?' }, badRecord, good('batch-new-2', 13), { ...good(EXISTING.warm, 14), content: 'overwritten?' }];
}

const CASES: Case[] = [
  ...putCases.map(([name, code, rec]): Case => ({ name: `put: ${name}`, code, call: (s) => s.put(rec) })),
  ...putCases.map(([name, code, rec]): Case => ({ name: `putMany (record 3 of 5): ${name}`, code, call: (s) => s.putMany(batchWithBadThird(rec)) })),
  // the record itself
  ...([['null', null], ['undefined', undefined], ['a string', 'rec'], ['an array', [good('arr')]], ['a number', 7]] as Array<[string, unknown]>).flatMap(
    ([name, v]): Case[] => [
      { name: `put(${name})`, code: 'INVALID_ARGUMENT', call: (s) => s.put(v as MemoryInput) },
      { name: `putMany with ${name} as record 3 of 5`, code: 'INVALID_ARGUMENT', call: (s) => s.putMany(batchWithBadThird(v as MemoryInput)) },
    ],
  ),
  { name: 'putMany(5)', code: 'INVALID_ARGUMENT', call: (s) => s.putMany(5 as unknown as MemoryInput[]) },
  { name: 'putMany(null)', code: 'INVALID_ARGUMENT', call: (s) => s.putMany(null as unknown as MemoryInput[]) },
  { name: 'putMany(undefined)', code: 'INVALID_ARGUMENT', call: (s) => s.putMany(undefined as unknown as MemoryInput[]) },
  { name: 'putMany({}) (not iterable)', code: 'INVALID_ARGUMENT', call: (s) => s.putMany({} as unknown as MemoryInput[]) },
  { name: 'putMany(a single record)', code: 'INVALID_ARGUMENT', call: (s) => s.putMany(good('single') as unknown as MemoryInput[]) },
  // reads and other writes with bad arguments
  ...([['a number', 42], ['null', null], ['undefined', undefined], ['an empty string', ''], ['a lone surrogate', '\ud800'], ['1025 bytes', 'b'.repeat(1025)]] as Array<[string, unknown]>).flatMap(
    ([name, id]): Case[] => [
      { name: `get(${name})`, code: 'INVALID_ARGUMENT', call: (s) => s.get(id as string) },
      { name: `has(${name})`, code: 'INVALID_ARGUMENT', call: (s) => s.has(id as string) },
      { name: `delete(${name})`, code: 'INVALID_ARGUMENT', call: (s) => s.delete(id as string) },
      { name: `move(${name}, 'cold')`, code: 'INVALID_ARGUMENT', call: (s) => s.move(id as string, 'cold') },
    ],
  ),
  ...([['lukewarm', 'lukewarm'], ["'all'", 'all'], ['undefined', undefined], ["'HOT'", 'HOT'], ['0', 0]] as Array<[string, unknown]>).map(
    ([name, t]): Case => ({ name: `move(hot id, ${name})`, code: 'INVALID_ARGUMENT', call: (s) => s.move(EXISTING.hot, t as Tier) }),
  ),
  { name: "iterate({tier:'x'})", code: 'INVALID_ARGUMENT', call: (s) => [...s.iterate({ tier: 'x' as Tier })] },
  { name: 'iterate({batchSize:0})', code: 'INVALID_ARGUMENT', call: (s) => [...s.iterate({ batchSize: 0 })] },
  { name: 'iterate({batchSize:-1})', code: 'INVALID_ARGUMENT', call: (s) => [...s.iterate({ batchSize: -1 })] },
  { name: 'iterate({batchSize:1.5})', code: 'INVALID_ARGUMENT', call: (s) => [...s.iterate({ batchSize: 1.5 })] },
  { name: "list({tier:'x'})", code: 'INVALID_ARGUMENT', call: (s) => s.list({ tier: 'x' as Tier }) },
  { name: 'list({limit:0})', code: 'INVALID_ARGUMENT', call: (s) => s.list({ limit: 0 }) },
  { name: 'list({limit:-1})', code: 'INVALID_ARGUMENT', call: (s) => s.list({ limit: -1 }) },
  { name: 'list({limit:1.5})', code: 'INVALID_ARGUMENT', call: (s) => s.list({ limit: 1.5 }) },
  { name: 'list({offset:-1})', code: 'INVALID_ARGUMENT', call: (s) => s.list({ offset: -1 }) },
  { name: 'list({offset:1.5})', code: 'INVALID_ARGUMENT', call: (s) => s.list({ offset: 1.5 }) },
  { name: "list({cursor:'garbage'})", code: 'INVALID_ARGUMENT', call: (s) => s.list({ cursor: 'garbage' }) },
  {
    name: 'list({cursor, offset})',
    code: 'INVALID_ARGUMENT',
    call: (s) => s.list({ tier: 'hot', cursor: s.list({ tier: 'hot', limit: 1 }).pagination.nextCursor!, offset: 1 }),
  },
  {
    name: 'list with a cursor of another tier',
    code: 'INVALID_ARGUMENT',
    call: (s) => s.list({ tier: 'warm', cursor: s.list({ tier: 'hot', limit: 1 }).pagination.nextCursor! }),
  },
  {
    name: "list({tier:'all'}) with a cursor of tier cold",
    code: 'INVALID_ARGUMENT',
    call: (s) => s.list({ tier: 'all', cursor: s.list({ tier: 'cold', limit: 1 }).pagination.nextCursor! }),
  },
  { name: 'recall with a query of 4 values', code: 'DIMENSION_MISMATCH', call: (s) => s.recall(new Float32Array(4)) },
  { name: 'recall with a number[] query of 6 values', code: 'DIMENSION_MISMATCH', call: (s) => s.recall([1, 2, 3, 4, 5, 6]) },
  { name: 'recall with a NaN query', code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, NaN, 1, 1, 1]) },
  { name: 'recall with a string query', code: 'INVALID_ARGUMENT', call: (s) => s.recall('12345' as unknown as number[]) },
  { name: 'recall with k 1.5', code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1, 1], { k: 1.5 }) },
  { name: 'recall with k -1', code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1, 1], { k: -1 }) },
  { name: "recall with tier 'x'", code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1, 1], { tier: 'x' as Tier }) },
  // a wrong option type comes before the query's length (DESIGN: "before any length check")
  { name: "recall with a query of 4 values and k 'x'", code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1], { k: 'x' as unknown as number }) },
  { name: 'recall with a query of 6 values and tier 5', code: 'INVALID_ARGUMENT', call: (s) => s.recall(new Float32Array(6), { tier: 5 as unknown as Tier }) },
  { name: "recall with a query of 4 values and minConfidence 'x'", code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1], { minConfidence: 'x' as unknown as number }) },
  { name: 'recall with a query of 4 values and includeEmbeddings 1', code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1], { includeEmbeddings: 1 as unknown as boolean }) },
  { name: "recall with a query of 4 values and options 'opts'", code: 'INVALID_ARGUMENT', call: (s) => s.recall([1, 1, 1, 1], 'opts' as unknown as { k: number }) },
  { name: 'recall with a NaN query of 4 values', code: 'DIMENSION_MISMATCH', call: (s) => s.recall([1, NaN, 1, 1]) },
];

describe('a bad call throws its TierStoreError and changes nothing', () => {
  const scratch = new Scratch();
  let store: MemoryStore;
  let before: Snapshot;
  afterAll(() => scratch.cleanup());

  beforeAll(() => {
    store = scratch.open(scratch.storePath(), { dimensions: DIMS, maxContentBytes: MAX_CONTENT });
    seedEachTier(store, good);
    before = snapshot(store);
    expect(before.counts).toEqual({ hot: 3, warm: 3, cold: 3, total: 9 });
  });

  it.each(CASES)('$name → $code', ({ name, code, call }) => {
    expectTierStoreError(() => call(store), code, name);
    expect(snapshot(store), `${name}: the store is exactly as before`).toEqual(before);
  });

  it('the store still works after all those errors, and has not changed on reopen', () => {
    expect(snapshot(store)).toEqual(before);
    const dir = store.path;
    store.close();
    store = scratch.open(dir, { maxContentBytes: MAX_CONTENT });
    expect(snapshot(store)).toEqual(before);
    // the boundaries themselves are accepted
    store.put(bad({ content: 'a'.repeat(MAX_CONTENT) }, 'boundary-ascii'));
    store.put(bad({ content: '€'.repeat(333) + 'a' }, 'boundary-multibyte'));
    store.put(bad({ content: '🚀'.repeat(250) }, 'boundary-4byte'));
    store.put(bad({ id: '€'.repeat(341) + 'a' }));
    store.put(bad({ createdAt: 8.64e15, confidence: 1, activation: 0 }, 'boundary-dates'));
    expect(store.counts().total).toBe(14);
  });

  it('putMany whose iterable throws part-way writes nothing and passes the error on', () => {
    const s0 = snapshot(store);
    const boom = new Error('iterator failed');
    function* gen() {
      yield good('gen-1', 1);
      yield good(EXISTING.cold, 2);
      throw boom;
    }
    let caught: unknown;
    try {
      store.putMany(gen());
    } catch (e) {
      caught = e;
    }
    expect(caught, 'the iterable’s own error propagates').toBe(boom);
    expect(snapshot(store)).toEqual(s0);
  });

  it('recallAsync reports bad input by rejecting, never by throwing', async () => {
    const s0 = snapshot(store);
    await expectRejection(() => store.recallAsync(new Float32Array(4)), 'DIMENSION_MISMATCH', 'recallAsync(4 values)');
    await expectRejection(() => store.recallAsync([1, NaN, 1, 1, 1]), 'INVALID_ARGUMENT', 'recallAsync(NaN)');
    await expectRejection(() => store.recallAsync('12345' as unknown as number[]), 'INVALID_ARGUMENT', 'recallAsync(string)');
    await expectRejection(() => store.recallAsync([1, 1, 1, 1, 1], { tier: 'x' as Tier }), 'INVALID_ARGUMENT', "recallAsync(tier 'x')");
    await expectRejection(
      () => store.recallAsync([1, 1, 1, 1], { k: 'x' as unknown as number }),
      'INVALID_ARGUMENT',
      "recallAsync(4 values, k 'x')",
    );
    expect(snapshot(store)).toEqual(s0);
  });
});

describe('content limits', () => {
  const scratch = useScratch();

  it('the default maxContentBytes is 64 MiB', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const before = snapshot(s);
    expectTierStoreError(() => s.put(bad({ content: 'a'.repeat(64 * 1024 * 1024 + 1) })), 'CONTENT_TOO_LARGE', '64 MiB + 1 byte');
    expectTierStoreError(() => s.put(bad({ content: 'é'.repeat(32 * 1024 * 1024) + 'a' })), 'CONTENT_TOO_LARGE', '64 MiB + 1 byte of 2-byte characters');
    expect(snapshot(s)).toEqual(before);
  }, 60_000);

  it('maxContentBytes 0 allows only empty content; the option is per open', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS, maxContentBytes: 0 });
    s.put(bad({ content: '' }, 'empty'));
    expectTierStoreError(() => s.put(bad({ content: 'a' }, 'one')), 'CONTENT_TOO_LARGE', 'one byte');
    expectTierStoreError(() => s.putMany([bad({ content: '' }, 'e2'), bad({ content: 'a' }, 'one')]), 'CONTENT_TOO_LARGE', 'one byte in a batch');
    expect(s.counts().total).toBe(1);
    s.close();
    const s2 = scratch.open(dir); // not stored: the default applies again
    s2.put(bad({ content: 'now allowed' }, 'one'));
    expect(s2.counts().total).toBe(2);
  });
});

describe('open: creation, dimensions and options', () => {
  const scratch = useScratch();

  it('creating a store without dimensions is INVALID_ARGUMENT and creates nothing usable', () => {
    const p = scratch.storePath();
    expectTierStoreError(() => open(p), 'INVALID_ARGUMENT', 'open(new path)');
    expectTierStoreError(() => open(p, {}), 'INVALID_ARGUMENT', 'open(new path, {})');
    expectTierStoreError(() => open(p), 'INVALID_ARGUMENT', 'open(new path) again');
    const s = scratch.open(p, { dimensions: 3 });
    expect(s.dimensions).toBe(3);
    expect(s.counts().total).toBe(0);
  });

  it.each([0, -1, 1.5, NaN, Infinity, '5', 65537, null])('creating with dimensions %s is INVALID_ARGUMENT', (d) => {
    const p = scratch.storePath();
    expectTierStoreError(() => open(p, { dimensions: d as number }), 'INVALID_ARGUMENT', `dimensions ${String(d)}`);
    expectTierStoreError(() => open(p), 'INVALID_ARGUMENT', 'nothing was created by the failed open');
  });

  it.each([
    ['a number', 42],
    ['an empty string', ''],
    ['null', null],
    ['undefined', undefined],
  ])('open(path = %s) is INVALID_ARGUMENT', (_name, p) => {
    expectTierStoreError(() => open(p as string, { dimensions: 4 }), 'INVALID_ARGUMENT', 'open(bad path)');
  });

  it('reopening with different dimensions is DIMENSION_MISMATCH and changes nothing (closed or still open)', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    for (let i = 0; i < 5; i++) s.put(good(`d-${i}`, i));
    s.move('d-1', 'warm');
    s.move('d-2', 'cold');
    const before = snapshot(s);
    // while open in this process
    expectTierStoreError(() => open(p, { dimensions: DIMS + 1 }), 'DIMENSION_MISMATCH', 'second handle with other dimensions');
    expect(snapshot(s), 'the open handle is unaffected').toEqual(before);
    s.close();
    for (const d of [DIMS - 1, DIMS + 1, 768]) {
      expectTierStoreError(() => open(p, { dimensions: d }), 'DIMENSION_MISMATCH', `reopen with dimensions ${d}`);
    }
    expectTierStoreError(() => open(p, { dimensions: DIMS + 1, readOnly: true }), 'DIMENSION_MISMATCH', 'read-only reopen with other dimensions');
    const again = scratch.open(p, { dimensions: DIMS });
    expect(again.dimensions).toBe(DIMS);
    expect(snapshot(again)).toEqual(before);
    again.close();
    const noDims = scratch.open(p);
    expect(noDims.dimensions, 'dimensions are read from the store').toBe(DIMS);
    expect(snapshot(noDims)).toEqual(before);
  });

  it.each([
    ['hotCapacity -1', { hotCapacity: -1 }],
    ['hotCapacity 1.5', { hotCapacity: 1.5 }],
    ["hotCapacity '10'", { hotCapacity: '10' }],
    ['hotCapacity NaN', { hotCapacity: NaN }],
    ['warmCapacity -1', { warmCapacity: -1 }],
    ["durability 'fast'", { durability: 'fast' }],
    ['durability null', { durability: null }],
    ['hotCapacity null', { hotCapacity: null }],
    ['maxContentBytes -1', { maxContentBytes: -1 }],
    ['maxContentBytes 1.5', { maxContentBytes: 1.5 }],
    ["readOnly 'yes'", { readOnly: 'yes' }],
    ['skipWarm 1', { skipWarm: 1 }],
  ])('open with %s is INVALID_ARGUMENT and leaves the store as it was', (_name, opts) => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    s.put(good('o-1'));
    const before = snapshot(s);
    s.close();
    expectTierStoreError(() => open(p, opts as unknown as OpenOptions), 'INVALID_ARGUMENT', JSON.stringify(opts));
    expect(snapshot(scratch.open(p)), 'the store is unchanged').toEqual(before);
  });

  it("open with options that are not an object ('x') is INVALID_ARGUMENT", () => {
    expectTierStoreError(() => open(scratch.storePath(), 'x' as unknown as OpenOptions), 'INVALID_ARGUMENT', "open(p, 'x')");
  });

  it('a store can be created in an existing empty directory', () => {
    const d = scratch.dir();
    const s = scratch.open(d, { dimensions: 2 });
    s.put({ id: 'a', content: 'b', embedding: [1, 2] });
    expect(s.path).toBe(d);
    s.close();
    expect(scratch.open(d).get('a')?.content).toBe('b');
  });
});

describe('a closed store', () => {
  const scratch = useScratch();

  function closedStore(): MemoryStore {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    s.put(good('a'));
    s.put(good('b'));
    s.close();
    return s;
  }

  const methods: Array<[string, (s: MemoryStore) => unknown]> = [
    ['put', (s) => s.put(good('c'))],
    ['putMany', (s) => s.putMany([good('c')])],
    ['putMany([])', (s) => s.putMany([])],
    ['get', (s) => s.get('a')],
    ['get with embedding', (s) => s.get('a', { includeEmbedding: true })],
    ['has', (s) => s.has('a')],
    ['delete', (s) => s.delete('a')],
    ['move', (s) => s.move('a', 'warm')],
    ['migrate', (s) => s.migrate()],
    ['counts', (s) => s.counts()],
    ['iterate', (s) => [...s.iterate()]],
    ['iterate().batches()', (s) => [...s.iterate({ tier: 'hot' }).batches()]],
    ['list', (s) => s.list()],
    ['recall', (s) => s.recall(new Float32Array(DIMS).fill(1))],
    ['flush', (s) => s.flush()],
    ['compact', (s) => s.compact()],
    ['stats', (s) => s.stats()],
  ];

  it.each(methods)('%s throws STORE_CLOSED', (name, call) => {
    const s = closedStore();
    expectTierStoreError(() => call(s), 'STORE_CLOSED', name);
  });

  it('async iteration and recallAsync reject with STORE_CLOSED', async () => {
    const s = closedStore();
    await expectRejection(() => s.recallAsync(new Float32Array(DIMS).fill(1)), 'STORE_CLOSED', 'recallAsync');
    await expectRejection(async () => {
      for await (const m of s.iterate()) void m;
    }, 'STORE_CLOSED', 'for await');
  });

  it('close() twice is a no-op; the data is intact on reopen', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    s.put(good('a'));
    s.close();
    expect(() => s.close()).not.toThrow();
    expect(() => s.close()).not.toThrow();
    expect(scratch.open(p).get('a')?.content).toBe(good('a').content);
  });

  it('an iterator that outlives its store fails with STORE_CLOSED, buffered records or not, never crashes', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    const ids = Array.from({ length: 50 }, (_, i) => `it-${i}`);
    s.putMany(ids.map((id, i) => good(id, i)));
    for (const id of ids.slice(20, 35)) s.move(id, 'warm');
    for (const id of ids.slice(35)) s.move(id, 'cold');
    const it = s.iterate({ batchSize: 2, includeEmbeddings: true })[Symbol.iterator]();
    const seen: string[] = [it.next().value!.id];
    s.close();
    let error: unknown;
    try {
      for (let r = it.next(); !r.done; r = it.next()) seen.push(r.value.id);
    } catch (e) {
      error = e;
    }
    expect(seen, 'the second record of the first batch is not yielded after close').toHaveLength(1);
    expect(error).toBeInstanceOf(TierStoreError);
    expect((error as TierStoreError).code).toBe('STORE_CLOSED');
  });

  it('a second handle of the same path in this process shares the data and outlives the first', () => {
    const p = scratch.storePath();
    const a = scratch.open(p, { dimensions: DIMS });
    const b = scratch.open(p);
    a.put(good('from-a'));
    expect(b.get('from-a')?.content, 'b sees a’s write').toBe(good('from-a').content);
    b.put(good('from-b'));
    expect(a.has('from-b'), 'a sees b’s write').toBe(true);
    expect(b.move('from-a', 'cold')).toBe(true);
    expect(a.get('from-a')?.tier).toBe('cold');
    a.close();
    expectTierStoreError(() => a.get('from-a'), 'STORE_CLOSED', 'closed handle');
    expect(b.counts().total, 'the other handle still works').toBe(2);
    b.put(good('after-a-closed'));
    const c = scratch.open(p);
    expect(c.counts().total).toBe(3);
    b.close();
    expect(c.get('after-a-closed')?.content).toBe(good('after-a-closed').content);
    c.close();
    expectTierStoreError(() => c.counts(), 'STORE_CLOSED', 'c closed');
    expect(scratch.open(p).counts().total, 'everything persisted').toBe(3);
  });
});

describe('read-only stores', () => {
  const scratch = useScratch();

  function populated(): string {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    for (let i = 0; i < 6; i++) s.put(good(`ro-${i}`, i));
    s.move('ro-2', 'warm');
    s.move('ro-3', 'warm');
    s.move('ro-4', 'cold');
    s.move('ro-5', 'cold');
    s.close();
    return p;
  }

  const writes: Array<[string, (s: MemoryStore) => unknown]> = [
    ['put', (s) => s.put(good('new'))],
    ['put of an existing id', (s) => s.put(good('ro-4'))],
    ['putMany', (s) => s.putMany([good('new'), good('new2')])],
    ['putMany([])', (s) => s.putMany([])],
    ['delete of an existing id', (s) => s.delete('ro-1')],
    ['delete of a missing id', (s) => s.delete('missing')],
    ['move down', (s) => s.move('ro-0', 'cold')],
    ['move up', (s) => s.move('ro-5', 'hot')],
    ['move to the same tier', (s) => s.move('ro-2', 'warm')],
    ['move of a missing id', (s) => s.move('missing', 'warm')],
    ['migrate', (s) => s.migrate()],
    ['compact', (s) => s.compact()],
  ];

  it.each(writes)('%s throws READ_ONLY and changes nothing', (name, call) => {
    const p = populated();
    const ro = scratch.open(p, { readOnly: true, hotCapacity: 1, warmCapacity: 1 });
    const before = snapshot(ro);
    expectTierStoreError(() => call(ro), 'READ_ONLY', name);
    expect(snapshot(ro)).toEqual(before);
    ro.close();
    expect(snapshot(scratch.open(p)), 'nothing changed on disk').toEqual(before);
  });

  it('reads work on a read-only store', async () => {
    const p = populated();
    const ro = scratch.open(p, { readOnly: true });
    expect(ro.dimensions).toBe(DIMS);
    expect(pickCounts(ro.counts())).toEqual({ hot: 2, warm: 2, cold: 2, total: 6 });
    expect(ro.get('ro-4', { includeEmbedding: true })?.content).toBe(good('ro-4', 4).content);
    expect(ro.get('ro-4')?.tier).toBe('cold');
    expect(ro.has('ro-2')).toBe(true);
    expect(iterateAll(ro, 'all', true).length).toBe(6);
    expect(ro.list({ tier: 'warm' }).count).toBe(2);
    expect(ro.recall(new Float32Array(DIMS).fill(1), { k: 6 }).length).toBe(6);
    expect((await ro.recallAsync(new Float32Array(DIMS).fill(1), { k: 6 })).length).toBe(6);
    expect(ro.stats().readOnly).toBe(true);
  });

  it('get on a read-only store updates access statistics in memory in every tier, and never the files', () => {
    const p = populated();
    const files = () => fs.readdirSync(p).sort().map((f) => `${f}:${fs.readFileSync(path.join(p, f)).toString('base64')}`);
    const before = files();
    const ro = scratch.open(p, { readOnly: true });
    for (const id of ['ro-0', 'ro-2', 'ro-4']) {
      const tier = ro.get(id)!.tier;
      const first = ro.get(id)!;  // the second get
      expect(first.accessCount, `${id} (${tier}): two gets`).toBe(2);
      const listed = ro.list({ tier: 'all' }).memories.find((m) => m.id === id)!;
      expect(listed.accessCount, `${id} (${tier}): list sees the count`).toBe(2);
      expect(listed.lastAccessAt).toBe(first.lastAccessAt);
      expect(iterateAll(ro, tier).find((m) => m.id === id)?.accessCount, `${id}: iterate sees it`).toBe(2);
    }
    ro.close();
    expect(files(), 'no file changed').toEqual(before);
    const again = scratch.open(p, { readOnly: true });
    expect(again.list({ tier: 'all' }).memories.map((m) => m.accessCount), 'kept in memory only').toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a read-only handle next to a writable one in this process rejects writes but sees the data', () => {
    const p = populated();
    const w = scratch.open(p);
    const ro = scratch.open(p, { readOnly: true });
    w.put(good('written-by-w'));
    expect(ro.has('written-by-w')).toBe(true);
    expectTierStoreError(() => ro.put(good('by-ro')), 'READ_ONLY', 'put through the read-only handle');
    expectTierStoreError(() => ro.delete('written-by-w'), 'READ_ONLY', 'delete through the read-only handle');
    expect(w.has('written-by-w')).toBe(true);
    expect(w.has('by-ro')).toBe(false);
  });

  it('a writable open after read-only handles in this process shares the store with them', () => {
    const p = populated();
    const before = snapshot(scratch.open(p, { readOnly: true }));
    const ro = scratch.open(p, { readOnly: true });
    const w = scratch.open(p);
    expect(snapshot(w)).toEqual(before);
    w.put(good('after-upgrade'));
    expect(ro.get('after-upgrade')?.content, 'the read-only handles see the writer').toBe(good('after-upgrade').content);
    expectTierStoreError(() => ro.put(good('by-ro')), 'READ_ONLY', 'put through a read-only handle after the writer opened');
    expect(ro.stats().readOnly).toBe(true);
    expect(w.stats().readOnly).toBe(false);
    ro.close();
    w.put(good('after-ro-closed'));
    w.close();
    const again = scratch.open(p);
    expect(again.counts().total).toBe(before.counts.total + 2);
    expect(again.get('after-ro-closed')?.content).toBe(good('after-ro-closed').content);
  });

  it('a writable open while a read-only handle of this process iterates is STORE_LOCKED until the iteration ends', () => {
    const p = populated();
    const ro = scratch.open(p, { readOnly: true });
    const seen: string[] = [];
    for (const m of ro.iterate({ batchSize: 1 })) {
      seen.push(m.id);
      if (seen.length === 2) {
        expectTierStoreError(() => open(p), 'STORE_LOCKED', 'writable open during a read-only iteration');
      }
    }
    expect(seen.length, 'the iteration went on to the end').toBe(6);
    const w = scratch.open(p);
    w.put(good('after-iteration'));
    expect(ro.has('after-iteration')).toBe(true);
  });

  it('opening a missing store read-only fails with a TierStoreError', () => {
    let err: unknown;
    try {
      open(scratch.storePath(), { readOnly: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TierStoreError);
  });
});

describe('one process at a time owns a store directory', () => {
  const scratch = useScratch();

  function populated(): { p: string; before: Snapshot } {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS });
    for (let i = 0; i < 4; i++) s.put(good(`lk-${i}`, i));
    s.move('lk-1', 'warm');
    s.move('lk-2', 'cold');
    const before = snapshot(s);
    s.close();
    return { p, before };
  }

  /** Runs `open` in a child and returns what happened. */
  function openInChild(p: string, options: Record<string, unknown>): { ok: boolean; code?: string; count?: number; isTierStoreError?: boolean } {
    const r = runChild(
      `try { const s = ts.open(args.p, args.options); const count = s.counts().total; s.close(); emit('RESULT', { ok: true, count }); }
       catch (e) { emit('RESULT', { ok: false, ...errorInfo(e) }); }`,
      { p, options },
    );
    expect(r.status === 0 && r.signal === null, `child ran cleanly: ${describeChild(r)}`).toBe(true);
    expect(r.result, `child reported: ${describeChild(r)}`).toBeDefined();
    return r.result as { ok: boolean; code?: string; count?: number };
  }

  it('a writer in this process locks out other processes, writers and readers', () => {
    const { p } = populated();
    const s = scratch.open(p);
    const w = openInChild(p, {});
    expect(w.ok, 'a second process cannot open for writing').toBe(false);
    expect(w.code).toBe('STORE_LOCKED');
    expect(w.isTierStoreError, 'the child got a TierStoreError').toBe(true);
    const r = openInChild(p, { readOnly: true });
    expect(r.ok, 'a second process cannot open read-only while a writer holds the store').toBe(false);
    expect(r.code).toBe('STORE_LOCKED');
    expect(s.counts().total, 'the owner is unaffected').toBe(4);
    s.close();
    const after = openInChild(p, {});
    expect(after, 'after close another process can open').toEqual({ ok: true, count: 4 });
  }, 60_000);

  it('closing the writer while a read-only handle of this process stays open turns the lock shared: other processes may read, not write', () => {
    const { p, before } = populated();
    const w = scratch.open(p);
    const ro = scratch.open(p, { readOnly: true });
    w.put(good('last-write'));
    expect(openInChild(p, { readOnly: true }).code, 'a reader elsewhere waits while the writer is open').toBe('STORE_LOCKED');
    w.close();
    expect(openInChild(p, { readOnly: true }), 'then a reader elsewhere gets in').toEqual({ ok: true, count: 5 });
    expect(openInChild(p, {}).code, 'a writer elsewhere still waits for this process\'s reader').toBe('STORE_LOCKED');
    expect(ro.get('last-write')?.content, 'the reader here reads on').toBe(good('last-write').content);
    expect(snapshot(ro).counts.total).toBe(before.counts.total + 1);
    expectTierStoreError(() => ro.put(good('by-ro')), 'READ_ONLY', 'the reader here still refuses writes');
    ro.close();
    expect(openInChild(p, {}), 'once it closes a writer gets in').toEqual({ ok: true, count: 5 });
  }, 60_000);

  it('a writer in another process locks this one out until it exits', async () => {
    const { p, before } = populated();
    const holder = await StoreHolder.start(p, {});
    try {
      expect((await holder.opened()).tag).toBe('READY');
      expectTierStoreError(() => open(p), 'STORE_LOCKED', 'open while another process holds the store');
      expectTierStoreError(() => open(p, { readOnly: true }), 'STORE_LOCKED', 'read-only open while another process writes');
      expectTierStoreError(() => open(p, { dimensions: DIMS }), 'STORE_LOCKED', 'open with dimensions while locked');
      expect(await holder.closeAndExit()).toEqual({ code: 0, signal: null });
    } finally {
      holder.child.kill('SIGKILL');
    }
    const s = scratch.open(p);
    expect(snapshot(s), 'the data is intact').toEqual(before);
  }, 60_000);

  it('the lock of a SIGKILLed process is taken over', async () => {
    const { p, before } = populated();
    const holder = await StoreHolder.start(p, {});
    try {
      expect((await holder.opened()).tag).toBe('READY');
      expectTierStoreError(() => open(p), 'STORE_LOCKED', 'while the holder lives');
      const exit = await holder.kill('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
    } finally {
      holder.child.kill('SIGKILL');
    }
    const s = scratch.open(p);
    expect(snapshot(s), 'the data is intact after the holder was killed').toEqual(before);
    s.put(good('after-takeover'));
    s.close();
    expect(openInChild(p, {}), 'and the lock is released properly afterwards').toEqual({ ok: true, count: 5 });
  }, 60_000);

  it('a SIGKILLed read-only holder does not block a writer either', async () => {
    const { p, before } = populated();
    const holder = await StoreHolder.start(p, { readOnly: true });
    try {
      expect((await holder.opened()).tag).toBe('READY');
      await holder.kill('SIGKILL');
    } finally {
      holder.child.kill('SIGKILL');
    }
    expect(snapshot(scratch.open(p))).toEqual(before);
  }, 60_000);

  it('readers share: read-only opens in two processes, but no writer meanwhile', async () => {
    const { p, before } = populated();
    const holder = await StoreHolder.start(p, { readOnly: true });
    try {
      const opened = await holder.opened();
      expect(opened.tag, `read-only holder opened: ${JSON.stringify(opened.value)}`).toBe('READY');
      const ro = open(p, { readOnly: true });
      try {
        expect(snapshot(ro), 'a second reader sees the data').toEqual(before);
        // Sharing a read-only store of this process with a writer needs the
        // store to itself: another process's reader keeps it out.
        expectTierStoreError(() => open(p), 'STORE_LOCKED', 'writer next to this process\'s reader while another process reads');
        expect(snapshot(ro), 'this process\'s reader is undisturbed').toEqual(before);
        expect(ro.stats().readOnly).toBe(true);
      } finally {
        ro.close();
      }
      expectTierStoreError(() => open(p), 'STORE_LOCKED', 'writer while another process reads');
      expect(await holder.closeAndExit()).toEqual({ code: 0, signal: null });
    } finally {
      holder.child.kill('SIGKILL');
    }
    const w = scratch.open(p);
    w.put(good('writer-after-readers'));
    expect(w.counts().total).toBe(5);
  }, 60_000);

  it('a lock left by a process that exited without close() is taken over', () => {
    const { p } = populated();
    const r = runChild(`const s = ts.open(args.p, {}); s.put({ id: 'exit-no-close', content: 'c', embedding: [1,2,3,4,5] }); emit('RESULT', { ok: true }); process.exit(0);`, { p });
    expect(r.status === 0 && r.signal === null, describeChild(r)).toBe(true);
    const s = scratch.open(p);
    expect(s.get('exit-no-close')?.content, 'the returned write survived').toBe('c');
    expect(s.counts().total).toBe(5);
  }, 60_000);
});

describe('closing while asynchronous work is in flight', () => {
  const scratch = useScratch();

  function populated(): MemoryStore {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    s.putMany(Array.from({ length: 300 }, (_, i) => good(`async-${i}`, i)));
    for (let i = 0; i < 100; i++) s.move(`async-${i}`, 'warm');
    for (let i = 100; i < 200; i++) s.move(`async-${i}`, 'cold');
    return s;
  }

  const settle = async (p: Promise<unknown>) => {
    try {
      return { ok: true as const, value: await p };
    } catch (e) {
      return { ok: false as const, error: e };
    }
  };
  const expectClosedOrFine = (r: { ok: boolean; error?: unknown }, what: string) => {
    if (!r.ok) {
      expect(r.error, `${what}: rejects with a TierStoreError`).toBeInstanceOf(TierStoreError);
      expect((r.error as TierStoreError).code, what).toBe('STORE_CLOSED');
    }
  };

  it('an async iteration whose store is closed mid-way ends in STORE_CLOSED (or completes), never a crash', async () => {
    for (const closeAfter of [0, 1, 5, 50]) {
      const s = populated();
      // The order the iteration yields (stable within a tier; hot, warm, cold).
      const order = [...s.iterate({ batchSize: 3 })].map((m) => m.id);
      expect(order).toHaveLength(300);
      const it = s.iterate({ batchSize: 3, includeEmbeddings: true })[Symbol.asyncIterator]();
      const ids: string[] = [];
      for (let i = 0; i < closeAfter; i++) ids.push((await it.next()).value!.id);
      expect(ids).toEqual(order.slice(0, closeAfter));
      const inFlight = it.next(); // started before close
      s.close();
      const r = await settle(inFlight);
      const what = `next() in flight at close (after ${closeAfter})`;
      expectClosedOrFine(r, what);
      if (r.ok) {
        // It completed: with the next record in order.
        const n = r.value as IteratorResult<{ id: string }>;
        expect(n.done, what).toBe(false);
        expect(n.value.id, what).toBe(order[closeAfter]);
        ids.push(n.value.id);
      }
      // An async iterator that rejected is finished: it ended in STORE_CLOSED.
      let error: unknown = r.ok ? undefined : r.error;
      if (r.ok) {
        try {
          for (let n = await it.next(); !n.done; n = await it.next()) ids.push(n.value.id);
        } catch (e) {
          error = e;
        }
      } else {
        expect((await it.next()).done, 'next() after the rejection: the iteration is over').toBe(true);
      }
      if (error !== undefined) {
        expectClosedOrFine({ ok: false, error }, 'next() after close');
        // Ended early: what it yielded is a prefix of the order, each record once.
        expect(ids, `ended with STORE_CLOSED after ${ids.length}`).toEqual(order.slice(0, ids.length));
      } else {
        // Completed (from records buffered before the close): every record, in order.
        expect(ids, 'completed: every record once, in order').toEqual(order);
      }
    }
  });

  it('recallAsync in flight when the store is closed resolves or rejects with STORE_CLOSED, never a crash', async () => {
    const s = populated();
    const want = s.recall(new Float32Array(DIMS).fill(0.5), { k: 10 }).map((h) => h.id);
    expect(want).toHaveLength(10);
    const pending = Array.from({ length: 8 }, () => s.recallAsync(new Float32Array(DIMS).fill(0.5), { k: 10 }));
    // Handlers go on every promise at once: one may reject while another is awaited.
    const settled = pending.map(settle);
    s.close();
    for (const settling of settled) {
      const r = await settling;
      expectClosedOrFine(r, 'recallAsync in flight');
      if (r.ok) expect((r.value as Array<{ id: string }>).map((h) => h.id), 'a recall that completed has the right hits').toEqual(want);
    }
  });
});
