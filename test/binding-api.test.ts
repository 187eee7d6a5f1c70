// The TypeScript layer and the binding: argument validation (before any
// native call), error codes and messages, handle state (close, readOnly),
// per-handle options, iterator lifetime, batch crossings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { MemoryStore, open, TierStoreError } from '../lib/index.js';
import type { ErrorCode, MemoryInput } from '../lib/index.js';
import { loadAddon } from '../lib/native.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-api-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let seq = 0;
const fresh = (options: Parameters<typeof open>[1] = { dimensions: 3 }): MemoryStore =>
  open(path.join(root, `s${seq++}`), options);

function codeOf(fn: () => unknown): { code: ErrorCode; message: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TierStoreError);
    const err = e as TierStoreError;
    expect(err.name).toBe('TierStoreError');
    return { code: err.code, message: err.message };
  }
  throw new Error('expected a TierStoreError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  const r = codeOf(fn);
  expect(r.code, r.message).toBe(code);
  if (message) expect(r.message).toMatch(message);
}

const rec = (id: string, extra: Partial<MemoryInput> = {}): MemoryInput => ({
  id,
  content: `content of ${id}`,
  embedding: [1, 2, 3],
  ...extra,
});

describe('open()', () => {
  it('validates path and options before touching the disk', () => {
    expectCode(() => open(''), 'INVALID_ARGUMENT', /path/);
    expectCode(() => open(42 as never), 'INVALID_ARGUMENT', /path/);
    expectCode(() => open(path.join(root, 'a\0b'), { dimensions: 3 }), 'INVALID_ARGUMENT', /NUL/);
    const p = path.join(root, 'never');
    expectCode(() => open(p, null as never), 'INVALID_ARGUMENT', /options/);
    expectCode(() => open(p, { dimensions: 0 }), 'INVALID_ARGUMENT', /dimensions.*\[1, 65536\]/);
    expectCode(() => open(p, { dimensions: 65537 }), 'INVALID_ARGUMENT', /dimensions/);
    expectCode(() => open(p, { dimensions: 1.5 }), 'INVALID_ARGUMENT', /dimensions/);
    expectCode(() => open(p, { dimensions: '3' as never }), 'INVALID_ARGUMENT', /dimensions/);
    expectCode(() => open(p, { dimensions: 3, hotCapacity: -1 }), 'INVALID_ARGUMENT', /hotCapacity/);
    expectCode(() => open(p, { dimensions: 3, warmCapacity: NaN }), 'INVALID_ARGUMENT', /warmCapacity/);
    expectCode(() => open(p, { dimensions: 3, skipWarm: 1 as never }), 'INVALID_ARGUMENT', /skipWarm/);
    expectCode(() => open(p, { dimensions: 3, durability: 'fast' as never }), 'INVALID_ARGUMENT', /'relaxed' or 'sync'/);
    expectCode(() => open(p, { dimensions: 3, readOnly: 'yes' as never }), 'INVALID_ARGUMENT', /readOnly/);
    expectCode(() => open(p, { dimensions: 3, maxContentBytes: 2 ** 31 }), 'INVALID_ARGUMENT', /maxContentBytes/);
    expect(fs.existsSync(p)).toBe(false);
  });

  it('creating without dimensions is INVALID_ARGUMENT; reopening reads them', () => {
    const p = path.join(root, 'dims');
    expectCode(() => open(p), 'INVALID_ARGUMENT', /dimensions/);
    const a = open(p, { dimensions: 5 });
    expect(a.dimensions).toBe(5);
    expect(a.path).toBe(p);
    a.close();
    const b = open(p);
    expect(b.dimensions).toBe(5);
    b.close();
    expectCode(() => open(p, { dimensions: 4 }), 'DIMENSION_MISMATCH');
  });
});

describe('put() validation', () => {
  const store = fresh();
  afterAll(() => store.close());

  it.each([
    ['a non-object', 42, 'INVALID_ARGUMENT', /memory must be an object/],
    ['a missing id', { content: '', embedding: [1, 2, 3] }, 'INVALID_ARGUMENT', /memory\.id/],
    ['an empty id', rec(''), 'INVALID_ARGUMENT', /memory\.id/],
    ['an id over 1024 bytes', rec('é'.repeat(513)), 'INVALID_ARGUMENT', /memory\.id.*1026.*1024/],
    ['a lone surrogate in id', rec('a\uD800'), 'INVALID_ARGUMENT', /memory\.id.*surrogate/],
    ['a lone surrogate in content', rec('x', { content: '\uDC00' }), 'INVALID_ARGUMENT', /memory\.content.*surrogate/],
    ['content not a string', rec('x', { content: 1 as never }), 'INVALID_ARGUMENT', /memory\.content/],
    ['a missing embedding', { id: 'x', content: '' }, 'INVALID_ARGUMENT', /memory\.embedding/],
    ['an embedding of the wrong type', rec('x', { embedding: new Uint8Array(3) as never }), 'INVALID_ARGUMENT', /Uint8Array/],
    ['an embedding string', rec('x', { embedding: 'abc' as never }), 'INVALID_ARGUMENT', /memory\.embedding/],
    ['a non-number element (before length)', rec('x', { embedding: ['1'] as never }), 'INVALID_ARGUMENT', /embedding\[0\]/],
    ['a short embedding', rec('x', { embedding: [1, 2] }), 'DIMENSION_MISMATCH', /2 values.*3 dimensions/],
    ['a long Float32Array', rec('x', { embedding: new Float32Array(4) }), 'DIMENSION_MISMATCH', /4 values/],
    ['NaN', rec('x', { embedding: [1, NaN, 3] }), 'INVALID_ARGUMENT', /embedding\[1\].*finite/],
    ['a value over float32 range', rec('x', { embedding: new Float64Array([1, 2, 1e39]) }), 'INVALID_ARGUMENT', /embedding\[2\]/],
    ['confidence > 1', rec('x', { confidence: 1.01 }), 'INVALID_ARGUMENT', /memory\.confidence.*\[0, 1\]/],
    ['activation < 0', rec('x', { activation: -0.1 }), 'INVALID_ARGUMENT', /memory\.activation/],
    ['confidence NaN', rec('x', { confidence: NaN }), 'INVALID_ARGUMENT', /memory\.confidence/],
    ['createdAt fractional', rec('x', { createdAt: 1.5 }), 'INVALID_ARGUMENT', /memory\.createdAt/],
    ['createdAt out of Date range', rec('x', { createdAt: 8.64e15 + 1 }), 'INVALID_ARGUMENT', /memory\.createdAt/],
    ['metadata an array', rec('x', { metadata: [] as never }), 'INVALID_ARGUMENT', /memory\.metadata.*plain object/],
    ['metadata null', rec('x', { metadata: null as never }), 'INVALID_ARGUMENT', /memory\.metadata/],
    ['metadata a Date', rec('x', { metadata: new Date() as never }), 'INVALID_ARGUMENT', /memory\.metadata.*Date/],
    ['metadata a class instance', rec('x', { metadata: new (class Foo {})() as never }), 'INVALID_ARGUMENT', /Foo/],
    ['metadata NaN', rec('x', { metadata: { a: NaN } }), 'INVALID_ARGUMENT', /memory\.metadata\.a.*NaN/],
    ['metadata Infinity', rec('x', { metadata: { a: [Infinity] } }), 'INVALID_ARGUMENT', /metadata\.a\[0\]/],
    ['metadata -0', rec('x', { metadata: { a: -0 } }), 'INVALID_ARGUMENT', /-0/],
    ['metadata undefined value', rec('x', { metadata: { a: undefined } }), 'INVALID_ARGUMENT', /metadata\.a.*undefined/],
    ['metadata BigInt', rec('x', { metadata: { a: 1n } }), 'INVALID_ARGUMENT', /bigint/],
    ['metadata function', rec('x', { metadata: { f: () => 1 } }), 'INVALID_ARGUMENT', /function/],
    ['metadata symbol value', rec('x', { metadata: { s: Symbol('s') } }), 'INVALID_ARGUMENT', /symbol/],
    ['metadata symbol key', rec('x', { metadata: { [Symbol('k')]: 1 } }), 'INVALID_ARGUMENT', /symbol keys/],
    ['metadata nested Date', rec('x', { metadata: { d: { when: new Date() } } }), 'INVALID_ARGUMENT', /metadata\.d\.when/],
    ['metadata Map', rec('x', { metadata: { m: new Map() } }), 'INVALID_ARGUMENT', /Map/],
    ['metadata array hole', rec('x', { metadata: { a: [1, , 3] } }), 'INVALID_ARGUMENT', /hole/],
    ['metadata lone surrogate string', rec('x', { metadata: { a: 'x\uD83D' } }), 'INVALID_ARGUMENT', /surrogate/],
    ['metadata lone surrogate key', rec('x', { metadata: { ['\uDE00']: 1 } }), 'INVALID_ARGUMENT', /surrogate/],
  ] as [string, unknown, ErrorCode, RegExp][])('rejects %s', (_name, input, code, message) => {
    expectCode(() => store.put(input as MemoryInput), code, message);
    expect(store.counts().total).toBe(0);
  });

  it('rejects cyclic metadata and a detached embedding', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { back: cyclic };
    expectCode(() => store.put(rec('x', { metadata: cyclic })), 'INVALID_ARGUMENT', /cycle/);
    const buf = new ArrayBuffer(12);
    const emb = new Float32Array(buf);
    structuredClone(buf, { transfer: [buf] });
    expectCode(() => store.put(rec('x', { embedding: emb })), 'INVALID_ARGUMENT', /detached/);
    expect(store.counts().total).toBe(0);
  });

  it('enforces maxContentBytes per handle as CONTENT_TOO_LARGE', () => {
    const small = fresh({ dimensions: 3, maxContentBytes: 4 });
    small.put(rec('ok', { content: 'éé' }));
    expectCode(() => small.put(rec('big', { content: 'ééé' })), 'CONTENT_TOO_LARGE', /6 UTF-8 bytes.*4/);
    expectCode(() => small.put(rec('big', { content: 'xxxxx' })), 'CONTENT_TOO_LARGE');
    expect(small.has('ok')).toBe(true);
    expect(small.has('big')).toBe(false);
    small.close();
  });

  it('accepts every embedding form, applies defaults and returns float32 values', () => {
    const sab = new Float32Array(new SharedArrayBuffer(12));
    sab.set([7, 8, 9]);
    const before = Date.now();
    store.put(rec('arr', { embedding: [0.1, 0.2, 0.3] }));
    store.put(rec('f64', { embedding: new Float64Array([0.1, 0.2, 0.3]), confidence: 0.1 }));
    store.put(rec('sab', { embedding: sab, confidence: 0.3, activation: 0.9, createdAt: -5, metadata: { n: null, s: 'é', a: [1, { b: true }] } }));
    store.put(rec('zero', { embedding: new Float32Array(3) }));
    sab[0] = 100; // the store took a copy
    const arr = store.get('arr', { includeEmbedding: true })!;
    expect(arr.embedding).toEqual(new Float32Array([0.1, 0.2, 0.3]));
    expect(arr.confidence).toBe(0.5);
    expect(arr.activation).toBe(0.5);
    expect(arr.metadata).toEqual({});
    expect(arr.createdAt).toBeGreaterThanOrEqual(before);
    expect(arr.lastAccessAt).toBeGreaterThanOrEqual(arr.createdAt);
    expect(arr.tier).toBe('hot');
    const f64 = store.get('f64', { includeEmbedding: true })!;
    expect(f64.embedding).toEqual(new Float32Array([0.1, 0.2, 0.3]));
    expect(f64.confidence).toBe(Math.fround(0.1));
    expect(f64.activation).toBe(Math.fround(0.1));
    const s = store.get('sab', { includeEmbedding: true })!;
    expect(Array.from(s.embedding!)).toEqual([7, 8, 9]);
    expect(s).toMatchObject({ confidence: Math.fround(0.3), activation: Math.fround(0.9), createdAt: -5 });
    expect(s.metadata).toEqual({ n: null, s: 'é', a: [1, { b: true }] });
    expect(store.get('zero')!.embedding).toBeUndefined();
    expect(store.get('missing')).toBeUndefined();
  });

  it('validates ids and options of the other methods', () => {
    expectCode(() => store.get(''), 'INVALID_ARGUMENT', /get\(\): id/);
    expectCode(() => store.get('x', { includeEmbedding: 1 as never }), 'INVALID_ARGUMENT', /includeEmbedding/);
    expectCode(() => store.get('x', 'opts' as never), 'INVALID_ARGUMENT', /options/);
    expectCode(() => store.has('\uD800'), 'INVALID_ARGUMENT', /has\(\): id.*surrogate/);
    expectCode(() => store.delete(5 as never), 'INVALID_ARGUMENT', /delete\(\): id/);
    expectCode(() => store.move('x', 'all' as never), 'INVALID_ARGUMENT', /'hot', 'warm' or 'cold'/);
    expectCode(() => store.move('x', 'tepid' as never), 'INVALID_ARGUMENT', /move\(\): tier/);
    expectCode(() => store.iterate({ batchSize: 0 }), 'INVALID_ARGUMENT', /batchSize.*\[1, 65536\]/);
    expectCode(() => store.iterate({ batchSize: 65537 }), 'INVALID_ARGUMENT', /batchSize/);
    expectCode(() => store.iterate({ tier: 'x' as never }), 'INVALID_ARGUMENT', /'hot', 'warm', 'cold' or 'all'/);
    expectCode(() => store.list({ limit: 0 }), 'INVALID_ARGUMENT', /limit/);
    expectCode(() => store.list({ offset: -1 }), 'INVALID_ARGUMENT', /offset/);
    expectCode(() => store.list({ offset: 0, cursor: 'abc' }), 'INVALID_ARGUMENT', /cursor.*offset/);
    expectCode(() => store.list({ cursor: 7 as never }), 'INVALID_ARGUMENT', /cursor/);
    expectCode(() => store.list({ tier: 'lukewarm' as never }), 'INVALID_ARGUMENT', /list\(\): options\.tier/);
  });
});

describe('putMany()', () => {
  it('validates every record before writing any, naming the bad one', () => {
    const store = fresh();
    const batch = [rec('a'), rec('b'), rec('c', { embedding: [1, 2, 3, 4] })];
    expectCode(() => store.putMany(batch), 'DIMENSION_MISMATCH', /^memories\[2\]\.embedding/);
    expectCode(() => store.putMany([rec('a'), 'nope' as never]), 'INVALID_ARGUMENT', /^memories\[1\] must be an object/);
    expectCode(() => store.putMany(42 as never), 'INVALID_ARGUMENT', /iterable/);
    expect(store.counts().total).toBe(0);
    store.close();
  });

  it('takes any iterable, returns the count given, and the last of a repeated id wins', () => {
    const store = fresh();
    function* gen() {
      yield rec('a', { content: 'first' });
      yield rec('b');
      yield rec('a', { content: 'second', metadata: { v: 2 } });
    }
    expect(store.putMany(gen())).toBe(3);
    expect(store.putMany([])).toBe(0);
    expect(store.counts()).toEqual({ hot: 2, warm: 0, cold: 0, total: 2 });
    expect(store.get('a')).toMatchObject({ content: 'second', metadata: { v: 2 } });
    // multi-byte strings are laid out back to back in one buffer
    const many = Array.from({ length: 300 }, (_, i) =>
      rec(`id-${i}-ü`, { content: 'ß€😀'.repeat(i % 7), embedding: new Float32Array([i, -i, 0.5]), metadata: { i, t: 'ö' } }));
    expect(store.putMany(many)).toBe(300);
    for (const i of [0, 1, 150, 299]) {
      const m = store.get(`id-${i}-ü`, { includeEmbedding: true })!;
      expect(m.content).toBe('ß€😀'.repeat(i % 7));
      expect(m.metadata).toEqual({ i, t: 'ö' });
      expect(Array.from(m.embedding!)).toEqual([i, -i, 0.5]);
    }
    store.close();
  });

  it('a put() re-entered from a getter of its argument stores both records intact', () => {
    const store = fresh();
    const outer = {
      get id() {
        store.put(rec('inner', { content: 'inner content', embedding: [9, 9, 9] }));
        return 'outer';
      },
      content: 'outer content',
      embedding: [1, 1, 1],
    };
    store.put(outer);
    expect(store.get('outer', { includeEmbedding: true })).toMatchObject({ content: 'outer content', embedding: new Float32Array([1, 1, 1]) });
    expect(store.get('inner', { includeEmbedding: true })).toMatchObject({ content: 'inner content', embedding: new Float32Array([9, 9, 9]) });
    store.close();
  });
});

describe('a store closed by a getter of the memory being written', () => {
  it.each([
    ['put()', (store: MemoryStore, m: MemoryInput) => store.put(m)],
    ['putMany()', (store: MemoryStore, m: MemoryInput) => store.putMany([m])],
  ])('%s throws STORE_CLOSED naming itself', (method, write) => {
    const store = fresh();
    const closing = {
      id: 'x',
      get content() {
        store.close();
        return 'c';
      },
      embedding: [1, 1, 1],
    };
    expect(() => write(store, closing)).toThrow(expect.objectContaining({ code: 'STORE_CLOSED', message: `${method}: the store is closed` }));
    expect(store.closed).toBe(true);
  });
});

describe('the native layer checks its own arguments', () => {
  it('each typed array of putMany, get and recall must be of its exact kind; a bad call changes nothing', () => {
    const native = new (loadAddon().NativeStore)(path.join(root, `s${seq++}`), 2, false, 10, 10, false, false);
    // One record: id "a", content "bc", metadata "{}", as UTF-16LE.
    const units = Buffer.from('abc{}', 'utf16le');
    const lengths = Uint32Array.of(1, 2, 2);
    const embeddings = Float32Array.of(1, 0);
    const scalars = Float64Array.of(0.5, 0.5, 1, 1);
    const bad: Array<[string, unknown[], RegExp]> = [
      ['units as a Uint16Array', [new Uint16Array(5), lengths, embeddings, scalars], /putMany\(\): units must be a Uint8Array/],
      ['units as an array', [[...units], lengths, embeddings, scalars], /putMany\(\): units must be a Uint8Array/],
      ['lengths as an Int32Array', [units, Int32Array.of(1, 2, 2), embeddings, scalars], /putMany\(\): lengths must be a Uint32Array/],
      ['embeddings as a Float64Array', [units, lengths, Float64Array.of(1, 0), scalars], /putMany\(\): embeddings must be a Float32Array/],
      ['embeddings as a DataView', [units, lengths, new DataView(new ArrayBuffer(8)), scalars], /putMany\(\): embeddings must be a Float32Array/],
      ['scalars as a Float32Array', [units, lengths, embeddings, Float32Array.of(0.5, 0.5, 1, 1)], /putMany\(\): scalars must be a Float64Array/],
      ['scalars missing', [units, lengths, embeddings], /putMany\(\): scalars/],
    ];
    for (const [what, args, message] of bad) {
      expectCode(() => (native.putMany as (...a: unknown[]) => void)(...args, 100), 'INVALID_ARGUMENT', message);
      expect(native.counts().total, what).toBe(0);
    }
    // The buffer may run past the records' units (the TypeScript layer passes its whole scratch buffer).
    native.putMany(Buffer.concat([units, Buffer.alloc(64, 0xff)]), lengths, embeddings, scalars, 100);
    expect(native.counts().total).toBe(1);
    expectCode(() => native.get('a', false, new Float32Array(6) as unknown as Float64Array), 'INVALID_ARGUMENT', /get\(\): scalars must be a Float64Array/);
    const out = new Float64Array(6);
    expect(native.get('a', false, out)).toEqual(['bc', '{}']);
    expect(Array.from(out.subarray(0, 3))).toEqual([0.5, 0.5, 1]);
    expectCode(() => native.recall(Float64Array.of(1, 0) as unknown as Float32Array, 1, 3, null, false), 'INVALID_ARGUMENT', /query must be a Float32Array/);
    expect(native.recall(Float32Array.of(1, 0), 1, 3, null, false).ids).toEqual(['a']);
    native.close();
  });
});

describe('handle state', () => {
  it('every method after close() throws STORE_CLOSED; close() twice is a no-op', () => {
    const store = fresh();
    store.put(rec('a'));
    store.close();
    store.close();
    expect(store.closed).toBe(true);
    const calls: [string, () => unknown][] = [
      ['put', () => store.put(rec('b'))],
      ['putMany', () => store.putMany([rec('b')])],
      ['get', () => store.get('a')],
      ['has', () => store.has('a')],
      ['delete', () => store.delete('a')],
      ['move', () => store.move('a', 'cold')],
      ['migrate', () => store.migrate()],
      ['counts', () => store.counts()],
      ['iterate', () => store.iterate()],
      ['list', () => store.list()],
      ['flush', () => store.flush()],
      ['compact', () => store.compact()],
      ['stats', () => store.stats()],
    ];
    for (const [name, call] of calls) {
      expectCode(call, 'STORE_CLOSED', new RegExp(`${name}\\(\\)`));
    }
  });

  it('writes on a readOnly handle are READ_ONLY; reads work', () => {
    const p = path.join(root, 'ro');
    const w = open(p, { dimensions: 3 });
    w.put(rec('a'));
    w.close();
    const r = open(p, { readOnly: true });
    expect(r.readOnly).toBe(true);
    expect(r.get('a')?.content).toBe('content of a');
    for (const call of [
      () => r.put(rec('b')),
      () => r.putMany([rec('b')]),
      () => r.delete('a'),
      () => r.move('a', 'cold'),
      () => r.migrate(),
      () => r.compact(),
    ]) {
      expectCode(call, 'READ_ONLY', /readOnly/);
    }
    expect(r.stats().readOnly).toBe(true);
    r.close();
  });

  it('two handles on one path share the store; options apply per handle', () => {
    const p = path.join(root, 'shared');
    const roomy = open(p, { dimensions: 3 });
    const tight = open(p, { hotCapacity: 1 });
    roomy.putMany([rec('a'), rec('b'), rec('c')]);
    roomy.migrate();
    expect(roomy.counts().hot).toBe(3);
    expect(tight.counts().total).toBe(3);
    tight.migrate();
    expect(tight.counts()).toMatchObject({ hot: 1, total: 3 });
    tight.close();
    // the other handle is still open
    expect(roomy.get('a')?.id).toBe('a');
    expectCode(() => tight.get('a'), 'STORE_CLOSED');
    roomy.close();
  });
});

describe('iteration', () => {
  function filled(n: number): MemoryStore {
    const store = fresh({ dimensions: 3, hotCapacity: 4, warmCapacity: 4 });
    store.putMany(Array.from({ length: n }, (_, i) => rec(`r${String(i).padStart(3, '0')}`, {
      embedding: [i, 0, 1],
      activation: (i % 10) / 10,
    })));
    store.migrate();
    return store;
  }

  it('yields every record once, hot then warm then cold, across batch boundaries', async () => {
    const store = filled(13);
    const counts = store.counts();
    expect(counts).toMatchObject({ hot: 4, warm: 4, cold: 5, total: 13 });
    const order = { hot: 0, warm: 1, cold: 2 };
    for (const batchSize of [1, 3, 1024]) {
      const sync = [...store.iterate({ batchSize })];
      expect(sync).toHaveLength(13);
      expect(new Set(sync.map((m) => m.id)).size).toBe(13);
      const tiers = sync.map((m) => order[m.tier]);
      expect(tiers).toEqual([...tiers].sort());
      const asyncIds: string[] = [];
      for await (const m of store.iterate({ batchSize })) asyncIds.push(m.id);
      expect(asyncIds).toEqual(sync.map((m) => m.id));
    }
    const warm = [...store.iterate({ tier: 'warm', includeEmbeddings: true })];
    expect(warm).toHaveLength(4);
    for (const m of warm) {
      expect(m.tier).toBe('warm');
      expect(m.embedding).toEqual(new Float32Array([Number(m.id.slice(1)), 0, 1]));
    }
    store.close();
  });

  it('batches() yields columnar batches with one embedding matrix each', () => {
    const store = filled(10);
    const batches = [...store.iterate({ batchSize: 4, includeEmbeddings: true }).batches()];
    let total = 0;
    for (const b of batches) {
      const n = b.ids.length;
      total += n;
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(4);
      for (const key of ['tiers', 'contents', 'metadata'] as const) expect(b[key]).toHaveLength(n);
      expect(b.confidence).toBeInstanceOf(Float32Array);
      expect(b.createdAt).toBeInstanceOf(Float64Array);
      expect(b.accessCount).toHaveLength(n);
      expect(b.embeddings).toBeInstanceOf(Float32Array);
      expect(b.embeddings).toHaveLength(n * 3);
      b.ids.forEach((id, i) => expect(b.embeddings![i * 3]).toBe(Number(id.slice(1))));
      expect(b.tiers.every((t) => t === 'hot' || t === 'warm' || t === 'cold')).toBe(true);
    }
    expect(total).toBe(10);
    expect([...store.iterate().batches()][0]!.embeddings).toBeUndefined();
    store.close();
  });

  it('closing the store closes its iterators: next() throws, nextAsync rejects, STORE_CLOSED', async () => {
    const store = filled(10);
    const it1 = store.iterate({ batchSize: 2 })[Symbol.iterator]();
    expect(it1.next().done).toBe(false);
    const it2 = store.iterate({ batchSize: 2 })[Symbol.asyncIterator]();
    expect((await it2.next()).done).toBe(false);
    const it3 = store.iterate({ batchSize: 2 }).batches()[Symbol.iterator]();
    expect(it3.next().done).toBe(false);
    store.close();
    // Not even the rest of the batch already fetched.
    expectCode(() => it1.next(), 'STORE_CLOSED');
    await expect((async () => {
      for (;;) await it2.next();
    })()).rejects.toMatchObject({ code: 'STORE_CLOSED', name: 'TierStoreError' });
    expectCode(() => it3.next(), 'STORE_CLOSED');
  });

  it('breaking out of a loop closes the native iterator', async () => {
    const store = filled(10);
    const open0 = store.stats().openIterators;
    for (const _m of store.iterate({ batchSize: 2 })) break;
    for await (const _m of store.iterate({ batchSize: 2 })) break;
    for (const _b of store.iterate({ batchSize: 2 }).batches()) break;
    expect(store.stats().openIterators).toBe(open0);
    const it = store.iterate({ batchSize: 2 })[Symbol.iterator]();
    it.next();
    expect(store.stats().openIterators).toBe(open0 + 1);
    it.return!();
    expect(store.stats().openIterators).toBe(open0);
    expect(it.next().done).toBe(true);
    store.close();
  });

  it('an async iterator serialises overlapping next() calls', async () => {
    const store = filled(9);
    const it = store.iterate({ batchSize: 2 })[Symbol.asyncIterator]();
    const results = await Promise.all(Array.from({ length: 11 }, () => it.next()));
    const ids = results.filter((r) => !r.done).map((r) => r.value!.id);
    expect(ids).toEqual([...store.iterate()].map((m) => m.id));
    expect(results.slice(9).every((r) => r.done)).toBe(true);
    store.close();
  });
});

describe('list()', () => {
  it('clamps limit to 1000, pages by cursor, omits nextCursor on the last page', () => {
    const store = fresh({ dimensions: 3, hotCapacity: 100_000 });
    store.putMany(Array.from({ length: 1005 }, (_, i) => rec(`k${i}`)));
    const first = store.list({ limit: 5000 });
    expect(first.count).toBe(1000);
    expect(first.memories).toHaveLength(1000);
    expect(first.pagination).toMatchObject({ offset: 0, limit: 1000, returned: 1000 });
    expect(typeof first.pagination.nextCursor).toBe('string');
    expect(first.tierCounts).toEqual({ hot: 1005, warm: 0, cold: 0, total: 1005 });
    const second = store.list({ cursor: first.pagination.nextCursor! });
    expect(second.count).toBe(5);
    expect('nextCursor' in second.pagination).toBe(false);
    const ids = new Set([...first.memories, ...second.memories].map((m) => m.id));
    expect(ids.size).toBe(1005);
    const byOffset = store.list({ offset: 1000, limit: 10, includeEmbeddings: true });
    expect(byOffset.count).toBe(5);
    expect(byOffset.memories[0]!.embedding).toEqual(new Float32Array([1, 2, 3]));
    expect(store.list().pagination.limit).toBe(100);
    expectCode(() => store.list({ tier: 'warm', cursor: first.pagination.nextCursor! }), 'INVALID_ARGUMENT', /cursor/);
    store.close();
  });
});
