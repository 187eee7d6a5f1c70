// Bad input: every public entry point — open() and its
// options, each MemoryStore method, the options of iterate / batches / list /
// recall / recallAsync — against wrong types, out-of-range numbers,
// NaN/±Infinity, huge values, lone surrogates, proxies (transparent,
// throwing, revoked, lying), typed arrays over shared, detached or shrunk
// buffers, float32 overflow, throwing getters and iterables. Each bad call
// gets its documented TierStoreError code (or, when the caller's own code
// throws — a getter, a Proxy trap, an iterator — that very error), and the
// store is byte-for-byte unchanged: every file of the directory hashed after
// flush() (see helpers/reliability-io-fingerprint.ts), plus a full snapshot
// including the access statistics that get() would have changed.
//
// Decisions checked here (README "Bad input, threads, resources and a full disk"):
// - Frozen, sealed and non-extensible inputs are valid: nothing is written to
//   an input.
// - A transparent Proxy works where its target would (Array.isArray sees
//   through it, so a Proxy of number[] is an array); a Proxy of a typed array
//   is not a typed array and is INVALID_ARGUMENT. Errors a Proxy or getter
//   throws (also a revoked Proxy's TypeError) propagate unchanged.
// - Every input property is read once: what is validated is what is stored
//   (a getter that answers differently on a second read changes nothing).
// - Typed arrays over a SharedArrayBuffer are accepted as a snapshot copy;
//   the finiteness check runs on the copy, so another thread writing NaN into
//   the shared memory meanwhile can never get a NaN stored.
// - Views over detached buffers are INVALID_ARGUMENT; views whose resizable
//   buffer shrank under them have fewer (or 0) values: DIMENSION_MISMATCH.
//
// Two bugs found here are fixed and asserted at the end: putMany of a batch
// too large for one JS array threw a RangeError (now INVALID_ARGUMENT before
// anything is allocated), and recall read options.minConfidence several times
// (a getter could pass the check with one value and hand over NaN).
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open, TierStoreError } from '../lib/index.js';
import type { MemoryInput, MemoryStore, OpenOptions, Tier } from '../lib/index.js';
import { fingerprint, type StoreFingerprint } from './helpers/reliability-io-fingerprint.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { firstBitDifference, iterateAll, Scratch, seedEachTier, snapshot, useScratch } from './helpers/store.js';

const DIMS = 5;
const MAX_CONTENT = 4096;
/** The largest finite float32, and the smallest double that rounds past it to Infinity. */
const F32_MAX = 3.4028234663852886e38;
const F32_OVERFLOW = 3.4028235677973366e38;

type Code = 'INVALID_ARGUMENT' | 'DIMENSION_MISMATCH' | 'CONTENT_TOO_LARGE' | 'STORE_CLOSED';

/** What a bad call must do: throw a TierStoreError with `code`, throw this exact error, or throw an error of this class. */
type Outcome = { code: Code } | { same: unknown } | { type: new (...args: never[]) => Error };

interface Case {
  group: string;
  name: string;
  call: (s: MemoryStore) => unknown;
  outcome: Outcome;
}

function good(id: string, seed = 1): MemoryInput {
  return {
    id,
    content: `content of ${id} — ñ 日本 🚀`,
    embedding: randomEmbedding(mulberry32(seed), DIMS, 'float32'),
    confidence: 0.5,
    metadata: { ok: true, seed },
  };
}

function rec(over: Record<string, unknown>, id = 'new-record'): MemoryInput {
  return { ...good(id, 99), ...over } as unknown as MemoryInput;
}

const EXISTING: Record<Tier, string> = { hot: 'h-0', warm: 'w-0', cold: 'c-0' };
const QUERY = [0.5, -0.25, 1, 0.125, 2];

// ---------------------------------------------------------------------------
// Input factories (each call makes a fresh object: a case may consume it)

function detachedView<T extends Float32Array | Float64Array>(make: (b: ArrayBuffer) => T): T {
  const buffer = new ArrayBuffer(DIMS * 8);
  const view = make(buffer);
  view.fill(1);
  structuredClone(buffer, { transfer: [buffer] });
  return view;
}

/** A length-tracking Float32Array whose resizable buffer shrank to `values` values. */
function shrunkView(values: number): Float32Array {
  const buffer = new ArrayBuffer(DIMS * 4, { maxByteLength: DIMS * 8 });
  const view = new Float32Array(buffer);
  view.fill(1);
  buffer.resize(values * 4);
  return view;
}

/** A fixed-length view that the resize left out of bounds (length 0). */
function outOfBoundsView(): Float32Array {
  const buffer = new ArrayBuffer(DIMS * 4, { maxByteLength: DIMS * 8 });
  const view = new Float32Array(buffer, 0, DIMS);
  view.fill(1);
  buffer.resize(4);
  return view;
}

function revoked<T extends object>(target: T): T {
  const r = Proxy.revocable(target, {});
  r.revoke();
  return r.proxy;
}

const trapError = new Error('a Proxy trap of the caller failed');
const getterError = new Error('a getter of the caller failed');
const iteratorError = new Error('the caller’s iterator failed');

function throwingProxy<T extends object>(target: T, trap: 'get' | 'ownKeys' | 'has' | 'getOwnPropertyDescriptor' | 'getPrototypeOf'): T {
  return new Proxy(target, { [trap]: () => { throw trapError; } });
}

function withThrowingGetter(over: Record<string, unknown>, key: string): Record<string, unknown> {
  const o: Record<string, unknown> = { ...over };
  Object.defineProperty(o, key, { get: () => { throw getterError; }, enumerable: true });
  return o;
}

/** A typed array posing as a Float32Array through an own Symbol.toStringTag. */
function spoofed<T extends ArrayBufferView>(view: T): T {
  Object.defineProperty(view, Symbol.toStringTag, { value: 'Float32Array' });
  return view;
}

// ---------------------------------------------------------------------------
// The table

const cases: Case[] = [];
const code = (c: Code): Outcome => ({ code: c });
const add = (group: string, name: string, call: (s: MemoryStore) => unknown, outcome: Outcome) =>
  cases.push({ group, name, call, outcome });

/** A record case, as put() and as record 3 of a 5-record putMany (the others valid, two of them upserts). */
function addRecord(group: string, name: string, make: () => unknown, outcome: Outcome) {
  add(group, `put: ${name}`, (s) => s.put(make() as MemoryInput), outcome);
  add(group, `putMany (3rd of 5): ${name}`, (s) => s.putMany([
    good('batch-new-1', 11),
    { ...good(EXISTING.cold, 12), content: 'overwritten?' },
    make() as MemoryInput,
    good('batch-new-2', 13),
    { ...good(EXISTING.warm, 14), content: 'overwritten?' },
  ]), outcome);
}

/** A recall case, also as recallAsync (which must reject with the same outcome, never throw). */
function addRecall(group: string, name: string, query: () => unknown, options: () => unknown, outcome: Outcome) {
  add(group, `recall: ${name}`, (s) => s.recall(query() as number[], options() as never), outcome);
  add(group, `recallAsync: ${name}`, (s) => s.recallAsync(query() as number[], options() as never), outcome);
}

/** An iterate options case, through for...of, batches() and for await. */
function addIterate(group: string, name: string, options: () => unknown, outcome: Outcome) {
  add(group, `iterate: ${name}`, (s) => [...s.iterate(options() as never)], outcome);
  add(group, `iterate().batches(): ${name}`, (s) => [...s.iterate(options() as never).batches()], outcome);
  add(group, `for await iterate: ${name}`, async (s) => {
    for await (const m of s.iterate(options() as never)) void m;
  }, outcome);
}

/** An id case for get/has/delete/move. */
function addId(group: string, name: string, id: () => unknown, outcome: Outcome) {
  add(group, `get(${name})`, (s) => s.get(id() as string), outcome);
  add(group, `has(${name})`, (s) => s.has(id() as string), outcome);
  add(group, `delete(${name})`, (s) => s.delete(id() as string), outcome);
  add(group, `move(${name}, 'cold')`, (s) => s.move(id() as string, 'cold'), outcome);
}

/** open() of the fixture's own directory (held open by this process). */
function addOpen(group: string, name: string, options: () => unknown, outcome: Outcome) {
  add(group, `open(fixture, ${name})`, (s) => {
    const extra = open(s.path, options() as OpenOptions);
    extra.close(); // only reached if the open wrongly succeeded
  }, outcome);
}

// 1. Wrong types -------------------------------------------------------------
{
  const g = 'wrong types';
  for (const [name, v] of [['a symbol', Symbol('id')], ['a bigint', 7n], ['a String object', new String('h-0')], ['an object with toString', { toString: () => 'h-0' }], ['a Buffer', Buffer.from('h-0')], ['true', true]] as Array<[string, unknown]>) {
    addId(g, `id ${name}`, () => v, code('INVALID_ARGUMENT'));
  }
  for (const [name, v] of [["'x'", 'x'], ['5', 5], ['an array', []], ['true', true], ['a function', () => ({})]] as Array<[string, unknown]>) {
    add(g, `get(id, options ${name})`, (s) => s.get(EXISTING.warm, v as never), code('INVALID_ARGUMENT'));
    addIterate(g, `options ${name}`, () => v, code('INVALID_ARGUMENT'));
    add(g, `list(options ${name})`, (s) => s.list(v as never), code('INVALID_ARGUMENT'));
    addRecall(g, `options ${name}`, () => QUERY, () => v, code('INVALID_ARGUMENT'));
    addOpen(g, `options ${name}`, () => v, code('INVALID_ARGUMENT'));
  }
  for (const [name, v] of [["'yes'", 'yes'], ['1', 1], ['null', null], ['a Boolean object', new Boolean(true)]] as Array<[string, unknown]>) {
    add(g, `get(id, { includeEmbedding: ${name} })`, (s) => s.get(EXISTING.cold, { includeEmbedding: v as boolean }), code('INVALID_ARGUMENT'));
    addIterate(g, `includeEmbeddings ${name}`, () => ({ includeEmbeddings: v }), code('INVALID_ARGUMENT'));
    add(g, `list includeEmbeddings ${name}`, (s) => s.list({ includeEmbeddings: v as boolean }), code('INVALID_ARGUMENT'));
    addRecall(g, `includeEmbeddings ${name}`, () => QUERY, () => ({ includeEmbeddings: v }), code('INVALID_ARGUMENT'));
    addOpen(g, `readOnly ${name}`, () => ({ readOnly: v }), code('INVALID_ARGUMENT'));
    addOpen(g, `skipWarm ${name}`, () => ({ skipWarm: v }), code('INVALID_ARGUMENT'));
  }
  for (const [name, v] of [["'10'", '10'], ['10n', 10n], ['null', null], ['a Number object', new Number(10)], ['[10]', [10]]] as Array<[string, unknown]>) {
    addIterate(g, `batchSize ${name}`, () => ({ batchSize: v }), code('INVALID_ARGUMENT'));
    add(g, `list limit ${name}`, (s) => s.list({ limit: v as number }), code('INVALID_ARGUMENT'));
    add(g, `list offset ${name}`, (s) => s.list({ offset: v as number }), code('INVALID_ARGUMENT'));
    addRecall(g, `k ${name}`, () => QUERY, () => ({ k: v }), code('INVALID_ARGUMENT'));
    addRecall(g, `minConfidence ${name}`, () => QUERY, () => ({ minConfidence: v }), code('INVALID_ARGUMENT'));
    for (const opt of ['dimensions', 'hotCapacity', 'warmCapacity', 'maxContentBytes']) {
      addOpen(g, `${opt} ${name}`, () => ({ [opt]: v }), code('INVALID_ARGUMENT'));
    }
  }
  for (const [name, v] of [['null', null], ['0', 0], ['a String object', new String('hot')], ['a symbol', Symbol('hot')], ["['hot']", ['hot']]] as Array<[string, unknown]>) {
    addIterate(g, `tier ${name}`, () => ({ tier: v }), code('INVALID_ARGUMENT'));
    add(g, `list tier ${name}`, (s) => s.list({ tier: v as Tier }), code('INVALID_ARGUMENT'));
    addRecall(g, `tier ${name}`, () => QUERY, () => ({ tier: v }), code('INVALID_ARGUMENT'));
    add(g, `move(id, tier ${name})`, (s) => s.move(EXISTING.hot, v as Tier), code('INVALID_ARGUMENT'));
  }
  for (const [name, v] of [['5', 5], ['null', null], ['an empty string', ''], ['a String object', new String('x')]] as Array<[string, unknown]>) {
    add(g, `list cursor ${name}`, (s) => s.list({ cursor: v as string }), code('INVALID_ARGUMENT'));
  }
  add(g, "open durability 1", (s) => open(s.path, { durability: 1 as never }), code('INVALID_ARGUMENT'));
  add(g, "open durability 'SYNC'", (s) => open(s.path, { durability: 'SYNC' as never }), code('INVALID_ARGUMENT'));
  add(g, 'open(Buffer path)', () => open(Buffer.from('/tmp/x') as unknown as string, { dimensions: DIMS }), code('INVALID_ARGUMENT'));
  add(g, 'open(URL path)', () => open(new URL('file:///tmp/x') as unknown as string, { dimensions: DIMS }), code('INVALID_ARGUMENT'));
  add(g, 'open(path with NUL)', (s) => open(`${s.path}\0x`), code('INVALID_ARGUMENT'));
  for (const [name, q] of [['null', null], ['undefined', undefined], ['an object', {}], ['an Int8Array', new Int8Array(DIMS)], ['a Uint8ClampedArray', new Uint8ClampedArray(DIMS)],
    ['a BigInt64Array', new BigInt64Array(DIMS)], ['a Set of numbers', new Set([1, 2, 3, 4, 5])], ['a string', '12345'], ['number[] with a bigint', [1, 2, 3n, 4, 5]], ['number[] with a Number object', [1, 2, new Number(3), 4, 5]],
    ['an ArrayBuffer', new ArrayBuffer(DIMS * 4)], ['a DataView', new DataView(new ArrayBuffer(DIMS * 4))]] as Array<[string, unknown]>) {
    addRecall(g, `query ${name}`, () => q, () => undefined, code('INVALID_ARGUMENT'));
  }
  // typed arrays posing as Float32Array (an own Symbol.toStringTag): judged by their real kind
  addRecord(g, 'embedding a DataView posing as a Float32Array', () => rec({ embedding: spoofed(new DataView(new ArrayBuffer(DIMS * 4))) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding a BigInt64Array posing as a Float32Array', () => rec({ embedding: spoofed(new BigInt64Array(DIMS)) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding an Int32Array posing as a Float32Array', () => rec({ embedding: spoofed(Int32Array.of(1, 2, 3, 4, 5)) }), code('INVALID_ARGUMENT'));
  addRecall(g, 'query a Uint16Array posing as a Float32Array', () => spoofed(Uint16Array.of(1, 2, 3, 4, 5)), () => undefined, code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding a Set', () => rec({ embedding: new Set([1, 2, 3, 4, 5]) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding number[] with a Number object', () => rec({ embedding: [1, 2, new Number(3), 4, 5] }), code('INVALID_ARGUMENT'));
  addRecord(g, 'id a symbol', () => rec({ id: Symbol('x') }), code('INVALID_ARGUMENT'));
  addRecord(g, 'content a String object', () => rec({ content: new String('x') }), code('INVALID_ARGUMENT'));
  addRecord(g, 'content a symbol', () => rec({ content: Symbol('x') }), code('INVALID_ARGUMENT'));
  addRecord(g, 'confidence a bigint', () => rec({ confidence: 1n }), code('INVALID_ARGUMENT'));
  addRecord(g, 'confidence a Number object', () => rec({ confidence: new Number(0.5) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'createdAt a bigint', () => rec({ createdAt: 1_700_000_000_000n }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata a null-prototype object holding a Date', () => rec({ metadata: Object.assign(Object.create(null), { d: new Date(0) }) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata a Number object value', () => rec({ metadata: { n: new Number(1) } }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata a typed array value', () => rec({ metadata: { e: new Float32Array(2) } }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata an array subclass value', () => rec({ metadata: { a: new (class Sub extends Array {})() } }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata an Error', () => rec({ metadata: { e: new Error('x') } }), code('INVALID_ARGUMENT'));
  addRecord(g, 'the record a Map', () => new Map([['id', 'x'], ['content', 'c']]), code('INVALID_ARGUMENT'));
  addRecord(g, 'the record a boolean', () => true, code('INVALID_ARGUMENT'));
  add(g, 'putMany(a string) (iterable, but not of records)', (s) => s.putMany('abc' as never), code('INVALID_ARGUMENT'));
  add(g, 'putMany(a Map of records) (entries are arrays)', (s) => s.putMany(new Map([['k', good('m1')]]) as never), code('INVALID_ARGUMENT'));
  add(g, 'putMany(a function)', (s) => s.putMany((() => []) as never), code('INVALID_ARGUMENT'));
  add(g, 'putMany(an array-like object)', (s) => s.putMany({ 0: good('al'), length: 1 } as never), code('INVALID_ARGUMENT'));
}

// 2. Out-of-range numbers ---------------------------------------------------
{
  const g = 'out of range';
  for (const k of [0, -1, 2 ** 32, 1.5, -0.5]) addRecall(g, `k ${k}`, () => QUERY, () => ({ k }), code('INVALID_ARGUMENT'));
  for (const b of [0, -1, 65_537, 2 ** 31, 0.5]) addIterate(g, `batchSize ${b}`, () => ({ batchSize: b }), code('INVALID_ARGUMENT'));
  for (const l of [0, -1, 0.5]) add(g, `list limit ${l}`, (s) => s.list({ limit: l }), code('INVALID_ARGUMENT'));
  for (const o of [-1, -0.5, 1.5]) add(g, `list offset ${o}`, (s) => s.list({ offset: o }), code('INVALID_ARGUMENT'));
  for (const d of [0, -1, 65_537, 4.5]) addOpen(g, `dimensions ${d}`, () => ({ dimensions: d }), code('INVALID_ARGUMENT'));
  addOpen(g, `dimensions ${DIMS + 1} (valid, but not this store’s)`, () => ({ dimensions: DIMS + 1 }), { code: 'DIMENSION_MISMATCH' as Code } as Outcome);
  for (const c of [-1, 0.5]) {
    addOpen(g, `hotCapacity ${c}`, () => ({ hotCapacity: c }), code('INVALID_ARGUMENT'));
    addOpen(g, `warmCapacity ${c}`, () => ({ warmCapacity: c }), code('INVALID_ARGUMENT'));
  }
  for (const m of [-1, 2 ** 31, 0.5]) addOpen(g, `maxContentBytes ${m}`, () => ({ maxContentBytes: m }), code('INVALID_ARGUMENT'));
  for (const v of [-Number.MIN_VALUE, -1e-300, 1 + Number.EPSILON, 2]) {
    addRecord(g, `confidence ${v}`, () => rec({ confidence: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `activation ${v}`, () => rec({ activation: v }), code('INVALID_ARGUMENT'));
  }
  for (const v of [8.64e15 + 1, -8.64e15 - 1, 0.5, -0.5]) addRecord(g, `createdAt ${v}`, () => rec({ createdAt: v }), code('INVALID_ARGUMENT'));
}

// 3. NaN and ±Infinity --------------------------------------------------------
{
  const g = 'NaN and Infinity';
  for (const v of [NaN, Infinity, -Infinity]) {
    addRecall(g, `k ${v}`, () => QUERY, () => ({ k: v }), code('INVALID_ARGUMENT'));
    addRecall(g, `minConfidence ${v}`, () => QUERY, () => ({ minConfidence: v }), code('INVALID_ARGUMENT'));
    addIterate(g, `batchSize ${v}`, () => ({ batchSize: v }), code('INVALID_ARGUMENT'));
    add(g, `list limit ${v}`, (s) => s.list({ limit: v }), code('INVALID_ARGUMENT'));
    add(g, `list offset ${v}`, (s) => s.list({ offset: v }), code('INVALID_ARGUMENT'));
    for (const opt of ['dimensions', 'hotCapacity', 'warmCapacity', 'maxContentBytes']) {
      addOpen(g, `${opt} ${v}`, () => ({ [opt]: v }), code('INVALID_ARGUMENT'));
    }
    addRecord(g, `confidence ${v}`, () => rec({ confidence: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `activation ${v}`, () => rec({ activation: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `createdAt ${v}`, () => rec({ createdAt: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `embedding number[] with ${v} last`, () => rec({ embedding: [1, 2, 3, 4, v] }), code('INVALID_ARGUMENT'));
    addRecord(g, `embedding Float32Array with ${v} first`, () => rec({ embedding: Float32Array.of(v, 1, 1, 1, 1) }), code('INVALID_ARGUMENT'));
    addRecord(g, `embedding Float64Array with ${v} in the middle`, () => rec({ embedding: Float64Array.of(1, 1, v, 1, 1) }), code('INVALID_ARGUMENT'));
    addRecord(g, `metadata with ${v} deep in arrays`, () => rec({ metadata: { a: [[1, { b: [v] }]] } }), code('INVALID_ARGUMENT'));
    addRecall(g, `query with ${v}`, () => [1, 1, v, 1, 1], () => undefined, code('INVALID_ARGUMENT'));
    addRecall(g, `Float64Array query with ${v}`, () => Float64Array.of(v, 1, 1, 1, 1), () => undefined, code('INVALID_ARGUMENT'));
  }
  // float32 overflow: finite doubles that become ±Infinity as float32
  for (const v of [F32_OVERFLOW, -F32_OVERFLOW, 1e39, Number.MAX_VALUE, -1e300]) {
    addRecord(g, `embedding number[] with ${v} (±Infinity as float32)`, () => rec({ embedding: [v, 0, 0, 0, 1] }), code('INVALID_ARGUMENT'));
    addRecord(g, `embedding Float64Array with ${v} (±Infinity as float32)`, () => rec({ embedding: Float64Array.of(1, 0, 0, 0, v) }), code('INVALID_ARGUMENT'));
    addRecall(g, `Float64Array query with ${v} (±Infinity as float32)`, () => Float64Array.of(1, 0, v, 0, 0), () => undefined, code('INVALID_ARGUMENT'));
  }
}

// 4. Huge values ----------------------------------------------------------------
{
  const g = 'huge values';
  for (const v of [1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 64, Number.MAX_VALUE]) {
    addRecall(g, `k ${v}`, () => QUERY, () => ({ k: v }), code('INVALID_ARGUMENT'));
    addIterate(g, `batchSize ${v}`, () => ({ batchSize: v }), code('INVALID_ARGUMENT'));
    for (const opt of ['dimensions', 'hotCapacity', 'warmCapacity', 'maxContentBytes']) {
      addOpen(g, `${opt} ${v}`, () => ({ [opt]: v }), code('INVALID_ARGUMENT'));
    }
    addRecord(g, `createdAt ${v}`, () => rec({ createdAt: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `confidence ${v}`, () => rec({ confidence: v }), code('INVALID_ARGUMENT'));
  }
  addRecord(g, 'embedding number[] of 1,000,000 values', () => rec({ embedding: new Array<number>(1_000_000).fill(1) }), code('DIMENSION_MISMATCH'));
  addRecord(g, 'embedding Float32Array of 16,777,216 values', () => rec({ embedding: new Float32Array(1 << 24) }), code('DIMENSION_MISMATCH'));
  addRecord(g, 'embedding a sparse array of length 2^32-1', () => rec({ embedding: new Array(2 ** 32 - 1) }), code('INVALID_ARGUMENT'));
  addRecall(g, 'query a sparse array of length 2^32-1', () => new Array(2 ** 32 - 1), () => undefined, code('INVALID_ARGUMENT'));
  addRecall(g, 'query a Float64Array of 4,194,304 values', () => new Float64Array(1 << 22), () => undefined, code('DIMENSION_MISMATCH'));
  add(g, 'putMany of 1,000,000 holes', (s) => s.putMany(new Array(1_000_000)), code('INVALID_ARGUMENT'));
  add(g, 'putMany of 200,000 valid records and one bad one at the end', (s) => {
    const base = good('bulk', 5);
    const list: MemoryInput[] = Array.from({ length: 200_000 }, (_, i) => ({ ...base, id: `bulk-${i}` }));
    list.push(rec({ embedding: [1, 2] }));
    return s.putMany(list);
  }, code('DIMENSION_MISMATCH'));
  addRecord(g, 'id of 1,000,000 characters', () => rec({ id: 'i'.repeat(1_000_000) }), code('INVALID_ARGUMENT'));
  addId(g, 'an id of 1,000,000 characters', () => 'i'.repeat(1_000_000), code('INVALID_ARGUMENT'));
  addRecord(g, 'content of 16,777,216 characters', () => rec({ content: 'c'.repeat(1 << 24) }), code('CONTENT_TOO_LARGE'));
  addRecord(g, `content of ${MAX_CONTENT / 2 + 1} 2-byte characters`, () => rec({ content: 'é'.repeat(MAX_CONTENT / 2 + 1) }), code('CONTENT_TOO_LARGE'));
  // JSON of the longest string V8 allows (2^29 - 24 units) plus its quotes cannot be a string
  add(g, 'put: metadata whose JSON text exceeds the longest possible string', (s) => s.put(rec({ metadata: { s: 'm'.repeat(2 ** 29 - 24) } })), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata nested 100,000 levels deep', () => {
    let o: Record<string, unknown> = {};
    const root = o;
    for (let i = 0; i < 100_000; i++) o = (o.d = {}) as Record<string, unknown>;
    return rec({ metadata: root });
  }, code('INVALID_ARGUMENT'));
  add(g, 'list cursor of 10,000,000 characters', (s) => s.list({ cursor: 'c'.repeat(10_000_000) }), code('INVALID_ARGUMENT'));
}

// 5. Lone surrogates --------------------------------------------------------
{
  const g = 'lone surrogates';
  for (const [name, v] of [['high at the start', '\ud800abc'], ['low at the end', 'abc\udfff'], ['reversed pair', '\udc00\ud800'], ['high before a pair', '\ud83d\ud83d\ude80']] as Array<[string, string]>) {
    addRecord(g, `id ${name}`, () => rec({ id: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `content ${name}`, () => rec({ content: v }), code('INVALID_ARGUMENT'));
    addRecord(g, `metadata key ${name}`, () => rec({ metadata: { [v]: 1 } }), code('INVALID_ARGUMENT'));
    addRecord(g, `metadata value ${name}`, () => rec({ metadata: { k: v } }), code('INVALID_ARGUMENT'));
    addRecord(g, `metadata key ${name}, nested in an array`, () => rec({ metadata: { a: [1, { [v]: true }] } }), code('INVALID_ARGUMENT'));
    addId(g, `id ${name}`, () => v, code('INVALID_ARGUMENT'));
    addIterate(g, `tier ${name}`, () => ({ tier: v }), code('INVALID_ARGUMENT'));
    add(g, `list cursor ${name}`, (s) => s.list({ cursor: v }), code('INVALID_ARGUMENT'));
    add(g, `open(path ${name})`, (s) => open(`${s.path}${v}`), code('INVALID_ARGUMENT'));
  }
  addRecord(g, 'content of 4001 characters ending in a lone surrogate', () => rec({ content: `${'a'.repeat(4000)}\ud800` }), code('INVALID_ARGUMENT'));
  addRecord(g, 'upsert of the cold id with a lone surrogate in content', () => rec({ content: 'x\udc00' }, EXISTING.cold), code('INVALID_ARGUMENT'));
}

// 6. Proxies and getters (errors of the caller's own code propagate) ---------
{
  const g = 'proxies and getters';
  addRecord(g, 'embedding a Proxy of a Float32Array (not a typed array)', () => rec({ embedding: new Proxy(new Float32Array(DIMS).fill(1), {}) }), code('INVALID_ARGUMENT'));
  addRecall(g, 'query a Proxy of a Float32Array', () => new Proxy(new Float32Array(DIMS).fill(1), {}), () => undefined, code('INVALID_ARGUMENT'));
  addRecord(g, 'record Proxy whose get trap throws', () => throwingProxy(good('px'), 'get'), { same: trapError });
  addRecord(g, 'metadata Proxy whose ownKeys trap throws', () => rec({ metadata: throwingProxy({ a: 1 }, 'ownKeys') }), { same: trapError });
  addRecord(g, 'metadata Proxy whose getPrototypeOf trap throws', () => rec({ metadata: throwingProxy({ a: 1 }, 'getPrototypeOf') }), { same: trapError });
  addRecord(g, 'embedding Proxy of number[] whose get trap throws', () => rec({ embedding: throwingProxy([1, 2, 3, 4, 5], 'get') }), { same: trapError });
  addRecord(g, 'metadata array Proxy whose has trap hides element 1 (a hole)', () => rec({ metadata: { a: new Proxy([1, 2, 3], { has: (t, k) => k !== '1' && Reflect.has(t, k) }) } }), code('INVALID_ARGUMENT'));
  addRecord(g, 'metadata Proxy that lists a key it has no value for', () => rec({
    metadata: new Proxy({ a: 1 }, {
      ownKeys: () => ['a', 'ghost'],
      getOwnPropertyDescriptor: (t, k) => ({ value: Reflect.get(t, k), enumerable: true, configurable: true }),
    }),
  }), code('INVALID_ARGUMENT'));
  addRecord(g, 'a revoked Proxy as the record', () => revoked(good('rv')), { type: TypeError });
  addRecord(g, 'a revoked Proxy as metadata', () => rec({ metadata: revoked({ a: 1 }) }), { type: TypeError });
  addRecord(g, 'a revoked Proxy as embedding', () => rec({ embedding: revoked([1, 2, 3, 4, 5]) }), { type: TypeError });
  add(g, 'putMany(a revoked Proxy)', (s) => s.putMany(revoked([good('rv')])), { type: TypeError });
  add(g, 'get(id, a revoked Proxy)', (s) => s.get(EXISTING.hot, revoked({})), { type: TypeError });
  addIterate(g, 'options a revoked Proxy', () => revoked({}), { type: TypeError });
  add(g, 'list(a revoked Proxy)', (s) => s.list(revoked({})), { type: TypeError });
  addRecall(g, 'options a revoked Proxy', () => QUERY, () => revoked({}), { type: TypeError });
  addRecall(g, 'query a revoked Proxy', () => revoked([1, 2, 3, 4, 5]), () => undefined, { type: TypeError });
  addOpen(g, 'options a revoked Proxy', () => revoked({}), { type: TypeError });
  // throwing getters
  for (const key of ['id', 'content', 'embedding', 'confidence', 'activation', 'createdAt', 'metadata']) {
    addRecord(g, `getter of ${key} throws`, () => withThrowingGetter(good('gt') as unknown as Record<string, unknown>, key), { same: getterError });
  }
  addRecord(g, 'getter deep in metadata throws', () => rec({ metadata: { a: [withThrowingGetter({}, 'b')] } }), { same: getterError });
  // Not mistaken for the store's own stack overflow or allocation failure.
  const ownRangeError = new RangeError('a getter of the caller is out of range');
  addRecord(g, 'getter deep in metadata throws a RangeError of its own', () => {
    const o = {};
    Object.defineProperty(o, 'b', { enumerable: true, get: () => { throw ownRangeError; } });
    return rec({ metadata: { a: [o] } });
  }, { same: ownRangeError });
  addRecord(g, 'getter of an embedding element throws', () => {
    const e = [1, 2, 3, 4, 5];
    Object.defineProperty(e, 3, { get: () => { throw getterError; } });
    return rec({ embedding: e });
  }, { same: getterError });
  add(g, 'get(id, options with a throwing getter)', (s) => s.get(EXISTING.cold, withThrowingGetter({}, 'includeEmbedding')), { same: getterError });
  addIterate(g, 'options with a throwing getter (batchSize)', () => withThrowingGetter({}, 'batchSize'), { same: getterError });
  add(g, 'list(options with a throwing getter (cursor))', (s) => s.list(withThrowingGetter({}, 'cursor')), { same: getterError });
  for (const key of ['k', 'tier', 'minConfidence', 'includeEmbeddings']) {
    addRecall(g, `options with a throwing getter (${key})`, () => QUERY, () => withThrowingGetter({}, key), { same: getterError });
  }
  addOpen(g, 'options with a throwing getter (hotCapacity)', () => withThrowingGetter({}, 'hotCapacity'), { same: getterError });
  add(g, 'move(id, a tier object whose toString throws)', (s) => s.move(EXISTING.hot, { toString: () => { throw getterError; } } as never), code('INVALID_ARGUMENT'));
  // iterables for putMany
  function* failing(after: number) {
    for (let i = 0; i < after; i++) yield i % 2 ? good(EXISTING.cold, 40 + i) : good(`it-${i}`, 40 + i);
    throw iteratorError;
  }
  for (const after of [0, 1, 3, 500]) add(g, `putMany(a generator that throws after ${after} records)`, (s) => s.putMany(failing(after)), { same: iteratorError });
  add(g, 'putMany(an iterable whose Symbol.iterator getter throws)', (s) => s.putMany(withThrowingGetter({}, Symbol.iterator as unknown as string) as never), { same: getterError });
  add(g, 'putMany(an iterable whose next() returns a non-object)', (s) => s.putMany({ [Symbol.iterator]: () => ({ next: () => 5 }) } as never), { type: TypeError });
  add(g, 'putMany(a generator of 300 valid records and a bad one)', (s) => s.putMany((function* () {
    for (let i = 0; i < 300; i++) yield good(`gen-${i}`, i);
    yield rec({ confidence: 7 });
  })()), code('INVALID_ARGUMENT'));
}

// 7. Shared, detached and resized buffers ------------------------------------
{
  const g = 'buffers';
  addRecord(g, 'embedding Float32Array over a detached buffer', () => rec({ embedding: detachedView((b) => new Float32Array(b, 0, DIMS)) }), code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding Float64Array over a detached buffer', () => rec({ embedding: detachedView((b) => new Float64Array(b)) }), code('INVALID_ARGUMENT'));
  addRecall(g, 'query Float32Array over a detached buffer', () => detachedView((b) => new Float32Array(b, 0, DIMS)), () => undefined, code('INVALID_ARGUMENT'));
  addRecall(g, 'query Float64Array over a detached buffer', () => detachedView((b) => new Float64Array(b)), () => undefined, code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding a length-tracking view whose buffer shrank to 2 values', () => rec({ embedding: shrunkView(2) }), code('DIMENSION_MISMATCH'));
  addRecord(g, 'embedding a fixed view left out of bounds by a resize', () => rec({ embedding: outOfBoundsView() }), code('DIMENSION_MISMATCH'));
  addRecall(g, 'query a fixed view left out of bounds by a resize', () => outOfBoundsView(), () => undefined, code('DIMENSION_MISMATCH'));
  addRecord(g, 'embedding Float32Array over a SharedArrayBuffer with a NaN', () => {
    const e = new Float32Array(new SharedArrayBuffer(DIMS * 4)).fill(1);
    e[2] = NaN;
    return rec({ embedding: e });
  }, code('INVALID_ARGUMENT'));
  addRecord(g, 'embedding Float32Array over a SharedArrayBuffer of the wrong length', () => rec({ embedding: new Float32Array(new SharedArrayBuffer(DIMS * 4 + 4)) }), code('DIMENSION_MISMATCH'));
  addRecord(g, 'embedding a Float32Array whose getter-detached buffer is read after', () => {
    // the buffer is detached by a getter that runs before the embedding is read
    const buffer = new ArrayBuffer(DIMS * 4);
    const e = new Float32Array(buffer).fill(1);
    const r: Record<string, unknown> = { id: 'det-by-getter', embedding: e };
    Object.defineProperty(r, 'content', { get: () => { structuredClone(buffer, { transfer: [buffer] }); return 'c'; }, enumerable: true });
    return r;
  }, code('INVALID_ARGUMENT'));
}

// ---------------------------------------------------------------------------

async function outcomeOf(call: () => unknown): Promise<{ threw: boolean; syncThrow: boolean; error?: unknown }> {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    return { threw: true, syncThrow: true, error };
  }
  if (result instanceof Promise) {
    try {
      await result;
    } catch (error) {
      return { threw: true, syncThrow: false, error };
    }
  }
  return { threw: false, syncThrow: false };
}

function checkOutcome(name: string, got: { threw: boolean; error?: unknown }, want: Outcome): void {
  expect(got.threw, `${name}: fails`).toBe(true);
  const e = got.error;
  if ('code' in want) {
    expect(e, `${name}: a TierStoreError (got ${String(e)})`).toBeInstanceOf(TierStoreError);
    expect((e as TierStoreError).code, `${name}: code (message: ${(e as Error).message})`).toBe(want.code);
    expect((e as Error).message.length, `${name}: the message says what was wrong`).toBeGreaterThan(10);
  } else if ('same' in want) {
    expect(e, `${name}: the caller’s own error propagates unchanged`).toBe(want.same);
  } else {
    expect(e, `${name}: a ${want.type.name} (got ${String(e)})`).toBeInstanceOf(want.type);
  }
}

describe('bad input: every entry point, its documented error, and a byte-for-byte unchanged store', () => {
  const scratch = new Scratch();
  let store: MemoryStore;
  let start: StoreFingerprint;
  let current: StoreFingerprint;
  afterAll(() => scratch.cleanup());

  beforeAll(() => {
    store = scratch.open(scratch.storePath(), { dimensions: DIMS, maxContentBytes: MAX_CONTENT });
    seedEachTier(store, good);
    // access statistics that a bad get() must not touch
    for (const id of ['h-1', 'w-1', 'c-1']) store.get(id);
    start = fingerprint(store, { hashLarge: true, flush: true });
    expect(start.view.counts).toEqual({ hot: 3, warm: 3, cold: 3, total: 9 });
    expect(Object.keys(start.files).length, 'the store has files of every tier').toBeGreaterThanOrEqual(5);
    // the fingerprint itself is stable: flush() of an unchanged store writes nothing
    expect(fingerprint(store, { hashLarge: true, flush: true }), 'fingerprinting twice').toEqual(start);
    current = fingerprint(store);
  });

  const groups = [...new Set(cases.map((c) => c.group))];
  it('the table covers every category with many cases', () => {
    expect(groups).toEqual(['wrong types', 'out of range', 'NaN and Infinity', 'huge values', 'lone surrogates', 'proxies and getters', 'buffers']);
    expect(cases.length).toBeGreaterThan(500);
    expect(new Set(cases.map((c) => `${c.group}/${c.name}`)).size, 'case names are unique').toBe(cases.length);
  });

  for (const group of groups) {
    it(`${group}: each bad call fails as documented and changes no byte`, async () => {
      for (const c of cases.filter((x) => x.group === group)) {
        const got = await outcomeOf(() => c.call(store));
        checkOutcome(c.name, got, c.outcome);
        if (c.name.startsWith('recallAsync')) {
          expect(got.syncThrow, `${c.name}: reported by rejecting, never by throwing`).toBe(false);
        }
        const after = fingerprint(store);
        expect(after, `${c.name}: the store is byte-for-byte as before`).toEqual(current);
      }
      // flushed: access statistics a bad call might have changed in memory reach the files too
      expect(fingerprint(store, { flush: true }), `${group}: unchanged after flush()`).toEqual(current);
    }, 60_000);
  }

  it('after the whole table every file hashes as at the start, and reopening shows the same store', () => {
    expect(fingerprint(store, { hashLarge: true, flush: true })).toEqual(start);
    const dir = store.path;
    store.close();
    store = scratch.open(dir, { maxContentBytes: MAX_CONTENT });
    expect(snapshot(store)).toEqual(start.view);
  });
});

describe('valid inputs in unusual forms are accepted and stored exactly', () => {
  const scratch = useScratch();

  function roundTrip(s: MemoryStore, id: string, want: { content: string; metadata: unknown; embedding: ArrayLike<number> }) {
    const m = s.get(id, { includeEmbedding: true });
    expect(m, `${id} stored`).toBeDefined();
    expect(m!.content).toBe(want.content);
    expect(m!.metadata).toStrictEqual(want.metadata);
    const e = Float32Array.from(want.embedding, (x) => Math.fround(x));
    expect(firstBitDifference(m!.embedding!, e), `${id}: embedding bit-exact`).toBe(-1);
  }

  it('frozen, sealed and non-extensible records, embeddings, metadata and options work', async () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const deepFreeze = <T>(o: T): T => {
      if (typeof o === 'object' && o !== null && !ArrayBuffer.isView(o)) {
        for (const v of Object.values(o)) deepFreeze(v);
        Object.freeze(o);
      }
      return o;
    };
    const frozen = deepFreeze({ id: 'frozen', content: 'ice', embedding: [1, 2, 3, 4, 5], metadata: { a: [1, { b: 'c' }], n: null } });
    s.put(frozen);
    roundTrip(s, 'frozen', frozen);
    const f32 = Object.preventExtensions(Float32Array.of(5, 4, 3, 2, 1));
    s.put(Object.seal({ id: 'sealed', content: 'seal', embedding: f32, metadata: Object.seal({ k: 1 }) }));
    roundTrip(s, 'sealed', { content: 'seal', metadata: { k: 1 }, embedding: f32 });
    expect(s.putMany(Object.freeze([deepFreeze(good('fm-1', 1)), deepFreeze(good('fm-2', 2))]))).toBe(2);
    const opts = deepFreeze({ tier: 'all' as const, includeEmbeddings: true, batchSize: 2 });
    expect([...s.iterate(opts)].length).toBe(4);
    expect([...s.iterate(opts).batches()].length).toBe(2);
    expect(s.list(deepFreeze({ tier: 'hot' as const, limit: 2 })).count).toBe(2);
    const q = deepFreeze([1, 1, 1, 1, 1]);
    expect(s.recall(q, deepFreeze({ k: 3, tier: 'all' as const, minConfidence: 0 })).length).toBe(3);
    expect((await s.recallAsync(q, deepFreeze({ k: 2 }))).length).toBe(2);
    expect(s.get('frozen', deepFreeze({ includeEmbedding: true }))?.id).toBe('frozen');
    const again = open(s.path, deepFreeze({ hotCapacity: 5 }));
    again.close();
  });

  it('transparent Proxies of records, number[] embeddings, metadata, options and putMany arrays work', async () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const px = <T extends object>(o: T): T => new Proxy(o, {});
    s.put(px({ id: 'proxied', content: 'p', embedding: px([1, 2, 3, 4, 5]), metadata: px({ a: px([1, 2]), b: px({ c: 'd' }) }) }));
    roundTrip(s, 'proxied', { content: 'p', metadata: { a: [1, 2], b: { c: 'd' } }, embedding: [1, 2, 3, 4, 5] });
    expect(s.putMany(px([good('pm-1', 1), px(good('pm-2', 2))]))).toBe(2);
    expect([...s.iterate(px({ tier: 'hot' as const }))].length).toBe(3);
    expect(s.list(px({ limit: 1 })).count).toBe(1);
    expect(s.recall(px([1, 1, 1, 1, 1]), px({ k: 2 })).length).toBe(2);
    expect((await s.recallAsync(px([1, 1, 1, 1, 1]), px({ k: 2 }))).length).toBe(2);
    expect(s.get('proxied', px({ includeEmbedding: true }))?.embedding).toBeInstanceOf(Float32Array);
  });

  it('each input property is read once: a getter that answers differently later changes nothing', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    /** A property whose first read gives `first` and every later read `later`. */
    const flipping = (o: Record<string | number, unknown>, key: string | number, first: unknown, later: unknown) => {
      let reads = 0;
      Object.defineProperty(o, key, { get: () => (reads++ === 0 ? first : later), enumerable: true, configurable: true });
      return o;
    };
    // metadata: a later read would be a BigInt (JSON.stringify throws), NaN (becomes null), a Date, a lone surrogate
    for (const [i, later] of [1n, NaN, new Date(0), '\ud800', undefined].entries()) {
      const metadata = flipping({ keep: 'x' }, 'v', 'first', later);
      s.put({ id: `flip-meta-${i}`, content: 'c', embedding: [1, 1, 1, 1, 1], metadata: metadata as Record<string, unknown> });
      expect(s.get(`flip-meta-${i}`)?.metadata, `metadata stored as first read (later: ${String(later)})`).toStrictEqual({ keep: 'x', v: 'first' });
    }
    // a nested array element
    const arr = flipping([] as unknown as Record<number, unknown>, 0, 7, NaN) as unknown as unknown[];
    s.put({ id: 'flip-arr', content: 'c', embedding: [1, 1, 1, 1, 1], metadata: { arr } });
    expect(s.get('flip-arr')?.metadata).toStrictEqual({ arr: [7] });
    // embedding element: NaN on a second read
    const emb = flipping([1, 2, 3, 4, 5] as unknown as Record<number, unknown>, 2, 3, NaN) as unknown as number[];
    s.put({ id: 'flip-emb', content: 'c', embedding: emb });
    roundTrip(s, 'flip-emb', { content: 'c', metadata: {}, embedding: [1, 2, 3, 4, 5] });
  });

  it('boundary values are accepted: float32 max, subnormals, MAX_SAFE_INTEGER options, createdAt ±8.64e15, 1024-byte ids', () => {
    const p = scratch.storePath();
    const s = scratch.open(p, { dimensions: DIMS, hotCapacity: Number.MAX_SAFE_INTEGER, warmCapacity: Number.MAX_SAFE_INTEGER, maxContentBytes: 2 ** 31 - 1 });
    const e = [F32_MAX, -F32_MAX, 1e-45, -1e-50, 0];
    s.put({ id: 'edges', content: '', embedding: e, createdAt: -8.64e15, confidence: 0, activation: 1 });
    roundTrip(s, 'edges', { content: '', metadata: {}, embedding: e });
    expect(s.get('edges')?.createdAt).toBe(-8.64e15);
    s.put({ id: 'x'.repeat(1024), content: 'max id', embedding: Float64Array.of(F32_MAX, 1, 1, 1, 1), createdAt: 8.64e15 });
    expect(s.has('x'.repeat(1024))).toBe(true);
    expect(s.list({ offset: Number.MAX_SAFE_INTEGER }).count).toBe(0);
    expect(s.list({ limit: Number.MAX_SAFE_INTEGER }).pagination.limit, 'limit is capped at 1000').toBe(1000);
    // docs/api.md: limit an integer >= 1 (capped), offset an integer >= 0: past 2^53 too.
    for (const v of [2 ** 53, 2 ** 64, 1e308, Number.MAX_VALUE]) {
      const page = s.list({ offset: v });
      expect(page.count, `offset ${v}: past every record`).toBe(0);
      expect(page.pagination.offset).toBe(v);
      expect(page.pagination.nextCursor).toBeUndefined();
      expect(s.list({ limit: v, tier: 'all' }).pagination, `limit ${v}`).toEqual({ offset: 0, limit: 1000, returned: 2 });
    }
    expect(s.recall([1, 0, 0, 0, 0], { k: 10_000, minConfidence: -1e308 }).length).toBe(2);
    expect(s.recall([1, 0, 0, 0, 0], { minConfidence: 1e308 }).length).toBe(0);
    expect([...s.iterate({ batchSize: 65_536 })].length).toBe(2);
    s.close();
    open(p, { dimensions: 5, hotCapacity: 0, warmCapacity: 0 }).close();
  });

  it('typed arrays over a SharedArrayBuffer are stored as a snapshot copy', async () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const shared = new Float32Array(new SharedArrayBuffer(DIMS * 4));
    shared.set([1, 2, 3, 4, 5]);
    const shared64 = new Float64Array(new SharedArrayBuffer(DIMS * 8));
    shared64.set([0.5, -0.2, 0.3, 0.4, -0.5]);
    s.put({ id: 'sab32', content: 'c', embedding: shared });
    s.putMany([{ id: 'sab64', content: 'c', embedding: shared64 }]);
    shared.fill(NaN);
    shared64.fill(-1);
    roundTrip(s, 'sab32', { content: 'c', metadata: {}, embedding: [1, 2, 3, 4, 5] });
    roundTrip(s, 'sab64', { content: 'c', metadata: {}, embedding: [0.5, -0.2, 0.3, 0.4, -0.5] });
    shared.set([0, 0, 0, 0, 1]);
    expect(s.recall(shared, { k: 1 })[0]?.id).toBe('sab32');
    expect((await s.recallAsync(shared, { k: 1 }))[0]?.id).toBe('sab32');
  });

  it('another thread writing NaN into a shared embedding while puts run never gets a NaN stored', async () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const sab = new SharedArrayBuffer(DIMS * 4 + 4);
    const shared = new Float32Array(sab, 0, DIMS).fill(1);
    const stop = new Int32Array(sab, DIMS * 4, 1);
    // The worker flips element 2 between NaN and 2 as fast as it can.
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const f = new Float32Array(workerData, 0, ${DIMS}); const stop = new Int32Array(workerData, ${DIMS * 4}, 1);
       while (Atomics.load(stop, 0) === 0) { f[2] = NaN; f[2] = 2; }`,
      { eval: true, workerData: sab },
    );
    try {
      let stored = 0;
      let rejected = 0;
      for (let i = 0; i < 3000; i++) {
        try {
          s.put({ id: `race-${i % 50}`, content: 'c', embedding: shared });
          stored++;
        } catch (e) {
          expect(e, 'a put that saw the NaN is INVALID_ARGUMENT').toBeInstanceOf(TierStoreError);
          expect((e as TierStoreError).code).toBe('INVALID_ARGUMENT');
          rejected++;
        }
      }
      expect(stored + rejected).toBe(3000);
      expect(stored, 'some puts saw a finite snapshot').toBeGreaterThan(0);
    } finally {
      Atomics.store(stop, 0, 1);
      await worker.terminate();
    }
    for (const m of iterateAll(s, 'all', true)) {
      for (const v of m.embedding!) expect(Number.isFinite(v), `${m.id}: every stored value is finite`).toBe(true);
      expect([1, 2].includes(m.embedding![2]!), `${m.id}: element 2 is one of the values written`).toBe(true);
    }
  });
});

describe('getters that act on the store during validation', () => {
  const scratch = useScratch();

  function populated(): MemoryStore {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    s.putMany([good('a', 1), good('b', 2), good('c', 3)]);
    s.move('b', 'warm');
    s.move('c', 'cold');
    return s;
  }

  it('a getter that writes during putMany validation: its own write stays, the failing putMany writes nothing', () => {
    const s = populated();
    const before = snapshot(s);
    const sneaky: Record<string, unknown> = { id: 'sneaky', embedding: [1, 1, 1, 1, 1] };
    Object.defineProperty(sneaky, 'content', {
      get: () => {
        s.put(good('written-by-getter', 9));
        s.delete('b');
        return 'x';
      },
      enumerable: true,
    });
    let error: unknown;
    try {
      s.putMany([good('pm-1', 4), sneaky as unknown as MemoryInput, rec({ embedding: [1] }, 'pm-bad'), good('pm-2', 5)]);
    } catch (e) {
      error = e;
    }
    expect((error as TierStoreError).code).toBe('DIMENSION_MISMATCH');
    const after = snapshot(s);
    // exactly the getter's effects: written-by-getter added, b deleted; nothing of the batch
    const expected = before.records.filter((r) => r.id !== 'b').map((r) => r.id);
    expect(after.records.map((r) => r.id).sort()).toEqual([...expected, 'written-by-getter'].sort());
    expect(after.records.filter((r) => r.id !== 'written-by-getter')).toEqual(before.records.filter((r) => r.id !== 'b'));
  });

  it('a getter that deletes or overwrites the same id during put: the put, which returns last, wins', () => {
    const s = populated();
    for (const id of ['a', 'b', 'c']) {
      const r: Record<string, unknown> = { id, embedding: [2, 2, 2, 2, 2] };
      Object.defineProperty(r, 'content', {
        get: () => {
          s.delete(id);
          s.put({ ...good(id, 50), content: 'from the getter' });
          return 'from the put';
        },
        enumerable: true,
      });
      s.put(r as unknown as MemoryInput);
      const m = s.get(id);
      expect(m?.content, id).toBe('from the put');
      expect(m?.tier, `${id}: a put goes to hot`).toBe('hot');
    }
    expect(s.counts().total).toBe(3);
    expect(new Set(iterateAll(s).map((m) => m.id)).size).toBe(3);
  });

  it('a getter that closes the store: every method fails with STORE_CLOSED (recallAsync rejects) and nothing is written', async () => {
    const p = scratch.storePath();
    const seed = scratch.open(p, { dimensions: DIMS });
    seed.putMany([good('a', 1), good('b', 2)]);
    seed.close();
    const reference = snapshot(scratch.open(p, { readOnly: false }));
    scratch.closeAll();
    const closing = (s: MemoryStore, value: unknown) => {
      const o: Record<string, unknown> = {};
      return { o, define: (key: string) => Object.defineProperty(o, key, { get: () => { s.close(); return value; }, enumerable: true }) };
    };
    const calls: Array<[string, (s: MemoryStore) => unknown]> = [
      ['put', (s) => { const c = closing(s, 'x'); Object.assign(c.o, { id: 'new', embedding: [1, 1, 1, 1, 1] }); c.define('content'); return s.put(c.o as never); }],
      ['putMany', (s) => { const c = closing(s, 'x'); Object.assign(c.o, { id: 'new', embedding: [1, 1, 1, 1, 1] }); c.define('content'); return s.putMany([good('n2'), c.o as never]); }],
      ['get', (s) => { const c = closing(s, true); c.define('includeEmbedding'); return s.get('a', c.o as never); }],
      ['iterate', (s) => { const c = closing(s, 2); c.define('batchSize'); return [...s.iterate(c.o as never)]; }],
      ['list', (s) => { const c = closing(s, 2); c.define('limit'); return s.list(c.o as never); }],
      ['recall', (s) => { const c = closing(s, 2); c.define('k'); return s.recall(QUERY, c.o as never); }],
      ['recallAsync', (s) => { const c = closing(s, 2); c.define('k'); return s.recallAsync(QUERY, c.o as never); }],
    ];
    for (const [name, call] of calls) {
      const s = open(p);
      const got = await outcomeOf(() => call(s));
      checkOutcome(name, got, code('STORE_CLOSED'));
      if (name === 'recallAsync') expect(got.syncThrow, 'recallAsync rejects').toBe(false);
      expect(s.closed).toBe(true);
      const check = open(p);
      expect(snapshot(check), `${name}: nothing written`).toEqual(reference);
      check.close();
    }
  });
});

describe('oversized batches, and options read once', () => {
  const scratch = useScratch();

  it('putMany of more records than one batch can hold is INVALID_ARGUMENT, and the store is unchanged', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: 4 });
    store.put({ id: 'kept', content: 'c', embedding: [1, 2, 3, 4] });
    for (const n of [2 ** 32 - 1, 2 ** 31]) {
      let error: unknown;
      try {
        store.putMany(new Array(n));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TierStoreError);
      expect((error as TierStoreError).code).toBe('INVALID_ARGUMENT');
      expect((error as TierStoreError).message).toMatch(/split them into smaller batches/);
    }
    expect(store.counts().total).toBe(1);
  });

  it('recall reads options.minConfidence once: a getter turning NaN after the check is not used', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: 4 });
    store.put({ id: 'a', content: 'c', embedding: [1, 2, 3, 4], confidence: 0.9 });
    let reads = 0;
    const options = {
      get minConfidence() {
        reads++;
        return reads === 1 ? 0.1 : Number.NaN;
      },
    };
    const hits = store.recall([1, 2, 3, 4], options);
    expect(reads).toBe(1);
    expect(hits.map((h) => h.id)).toEqual(['a']);
  });
});
