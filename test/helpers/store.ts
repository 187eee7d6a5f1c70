// Shared helpers of the store-* suites: temp directories and stores that are
// always cleaned up, the expected shape of a stored record, field-by-field
// comparison (bit-exact floats, byte-exact strings), snapshots of a whole
// store, list paging and error assertions.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { open, TierStoreError } from '../../lib/index.js';
import type {
  Memory,
  MemoryInput,
  MemoryStore,
  OpenOptions,
  Tier,
  TierSelector,
} from '../../lib/index.js';
import { toFloat32 } from './random.js';

export const TIERS: readonly Tier[] = ['hot', 'warm', 'cold'];

// ---------------------------------------------------------------------------
// Temp directories and stores

export class Scratch {
  private readonly dirs: string[] = [];
  private readonly stores: MemoryStore[] = [];

  /** A fresh, empty directory under os.tmpdir(). */
  dir(): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-test-'));
    this.dirs.push(d);
    return d;
  }

  /** A path for a new store: a not-yet-existing directory inside a fresh temp dir. */
  storePath(): string {
    return path.join(this.dir(), 'db');
  }

  /** open() and remember the store so cleanup closes it. */
  open(p: string, options?: OpenOptions): MemoryStore {
    const s = options === undefined ? open(p) : open(p, options);
    this.stores.push(s);
    return s;
  }

  closeAll(): void {
    for (const s of this.stores.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed or broken: cleanup must go on
      }
    }
  }

  cleanup(): void {
    this.closeAll();
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** A Scratch cleaned up after each test ('each') or after the suite ('all'). */
export function useScratch(scope: 'each' | 'all' = 'each'): Scratch {
  const scratch = new Scratch();
  if (scope === 'each') afterEach(() => scratch.cleanup());
  else afterAll(() => scratch.cleanup());
  return scratch;
}

// ---------------------------------------------------------------------------
// Expected records

/** An exact value, or an inclusive [lo, hi] range until first observed. */
export type Pinned = number | [number, number];

export interface Expected {
  id: string;
  content: string;
  metadata: Record<string, unknown>;
  confidence: number;
  activation: number;
  createdAt: Pinned;
  lastAccessAt: Pinned;
  accessCount: number;
  embedding: Float32Array;
}

/**
 * What the store must hand back for `input`, put between putStart and putEnd
 * (Date.now() read just before and just after the put call).
 */
export function expectedOf(input: MemoryInput, putStart: number, putEnd: number): Expected {
  const confidence = Math.fround(input.confidence ?? 0.5);
  return {
    id: input.id,
    content: input.content,
    // Metadata must survive a JSON round trip unchanged, so that is the
    // expected value (and a copy: a store must not mutate its input).
    metadata: JSON.parse(JSON.stringify(input.metadata ?? {})) as Record<string, unknown>,
    confidence,
    activation: input.activation === undefined ? confidence : Math.fround(input.activation),
    createdAt: input.createdAt ?? [putStart, putEnd],
    // The time of the put; 1 ms of slack either side for a clock read with
    // sub-millisecond precision or rounded differently from Date.now().
    lastAccessAt: [putStart - 1, putEnd + 1],
    accessCount: 0,
    embedding: toFloat32(input.embedding),
  };
}

/** Index of the first element whose float32 bit pattern differs, or -1. */
export function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

function describeStringDifference(actual: unknown, expected: string): string {
  if (typeof actual !== 'string') return `not a string but ${typeof actual}`;
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual.charCodeAt(i) === expected.charCodeAt(i)) i++;
  const show = (s: string) => JSON.stringify(s.slice(Math.max(0, i - 10), i + 30));
  return (
    `length ${actual.length} (${Buffer.byteLength(actual)} bytes) vs expected ${expected.length} ` +
    `(${Buffer.byteLength(expected)} bytes); first difference at UTF-16 index ${i}: ` +
    `got ${show(actual)}, expected ${show(expected)}`
  );
}

/** Byte-exact string comparison with a readable message even for 16 MiB strings. */
export function expectSameString(actual: unknown, expected: string, what: string): void {
  if (actual === expected) return;
  expect.fail(`${what}: ${describeStringDifference(actual, expected)}`);
}

function checkPinned(actual: unknown, exp: Pinned, what: string): number {
  expect(typeof actual, `${what} is a number`).toBe('number');
  const v = actual as number;
  if (typeof exp === 'number') {
    expect(v, what).toBe(exp);
  } else {
    expect(v, `${what} in [${exp[0]}, ${exp[1]}]`).toBeGreaterThanOrEqual(exp[0]);
    expect(v, `${what} in [${exp[0]}, ${exp[1]}]`).toBeLessThanOrEqual(exp[1]);
  }
  return v;
}

export interface CheckOptions {
  /** Whether the embedding was asked for (it must be present iff asked). */
  embedding: boolean;
  /** Where the memory came from, for messages. */
  where: string;
  /** Access statistics to expect instead of exp's (e.g. a get's own result). */
  skipAccessStats?: boolean;
}

/**
 * Asserts that `actual` is exactly the record `exp` in tier `tier`. Fields
 * known only as a range (default createdAt, lastAccessAt after a put) are
 * pinned to the observed value, so every later observation must match it.
 */
export function checkMemory(actual: Memory | undefined, exp: Expected, tier: Tier, opts: CheckOptions): void {
  const w = `${opts.where} [${JSON.stringify(exp.id.slice(0, 40))}]`;
  expect(actual, `${w}: record present`).toBeDefined();
  const m = actual as Memory;
  expectSameString(m.id, exp.id, `${w}.id`);
  expectSameString(m.content, exp.content, `${w}.content`);
  expect(m.tier, `${w}.tier`).toBe(tier);
  expect(m.metadata, `${w}.metadata`).toStrictEqual(exp.metadata);
  expect(Object.is(m.confidence, exp.confidence), `${w}.confidence ${m.confidence} vs ${exp.confidence}`).toBe(true);
  expect(Object.is(m.activation, exp.activation), `${w}.activation ${m.activation} vs ${exp.activation}`).toBe(true);
  const createdAt = checkPinned(m.createdAt, exp.createdAt, `${w}.createdAt`);
  expect(Number.isInteger(createdAt), `${w}.createdAt is an integer`).toBe(true);
  if (!opts.skipAccessStats) {
    const last = checkPinned(m.lastAccessAt, exp.lastAccessAt, `${w}.lastAccessAt`);
    expect(m.accessCount, `${w}.accessCount`).toBe(exp.accessCount);
    exp.lastAccessAt = last;
  }
  exp.createdAt = createdAt;
  if (opts.embedding) {
    expect(m.embedding, `${w}.embedding is a Float32Array`).toBeInstanceOf(Float32Array);
    const e = m.embedding as Float32Array;
    expect(e.length, `${w}.embedding.length`).toBe(exp.embedding.length);
    const diff = firstBitDifference(e, exp.embedding);
    expect(diff, `${w}.embedding bit-exact (first difference at ${diff}: ${e[diff]} vs ${exp.embedding[diff]})`).toBe(-1);
  } else {
    expect(m.embedding, `${w}.embedding absent when not asked for`).toBeUndefined();
  }
}

// ---------------------------------------------------------------------------
// Reading a whole store

export function iterateAll(store: MemoryStore, tier: TierSelector = 'all', includeEmbeddings = false): Memory[] {
  return [...store.iterate({ tier, includeEmbeddings })] as Memory[];
}

/** The records of iterate({tier}).batches(), re-assembled as Memory objects. */
export function fromBatches(store: MemoryStore, tier: TierSelector, includeEmbeddings: boolean, batchSize?: number): Memory[] {
  const out: Memory[] = [];
  const dims = store.dimensions;
  const it = store.iterate(batchSize === undefined ? { tier, includeEmbeddings } : { tier, includeEmbeddings, batchSize });
  for (const b of it.batches()) {
    const n = b.ids.length;
    for (const col of [b.tiers, b.contents, b.metadata, b.confidence, b.activation, b.createdAt, b.lastAccessAt, b.accessCount]) {
      expect(col.length, 'every batch column has one entry per record').toBe(n);
    }
    expect(b.confidence).toBeInstanceOf(Float32Array);
    expect(b.activation).toBeInstanceOf(Float32Array);
    expect(b.createdAt).toBeInstanceOf(Float64Array);
    expect(b.lastAccessAt).toBeInstanceOf(Float64Array);
    expect(b.accessCount).toBeInstanceOf(Float64Array);
    if (includeEmbeddings) {
      expect(b.embeddings, 'batch.embeddings present when asked').toBeInstanceOf(Float32Array);
      expect(b.embeddings!.length, 'batch.embeddings is n × dimensions').toBe(n * dims);
    } else {
      expect(b.embeddings, 'batch.embeddings absent when not asked').toBeUndefined();
    }
    for (let i = 0; i < n; i++) {
      const m: Memory = {
        id: b.ids[i]!,
        content: b.contents[i]!,
        metadata: b.metadata[i]!,
        confidence: b.confidence[i]!,
        activation: b.activation[i]!,
        createdAt: b.createdAt[i]!,
        lastAccessAt: b.lastAccessAt[i]!,
        accessCount: b.accessCount[i]!,
        tier: b.tiers[i]!,
      };
      if (includeEmbeddings) m.embedding = b.embeddings!.slice(i * dims, (i + 1) * dims);
      out.push(m);
    }
  }
  return out;
}

/**
 * Every record of `tier` through list() and its cursors, checking the page
 * invariants of docs/api.md (`.list()`) on the way.
 */
export function listAll(store: MemoryStore, tier: TierSelector, limit: number, includeEmbeddings: boolean): Memory[] {
  const out: Memory[] = [];
  let cursor: string | undefined;
  for (let page = 0; ; page++) {
    expect(page, 'list paging terminates').toBeLessThan(1_000_000);
    const res = cursor === undefined
      ? store.list({ tier, limit, includeEmbeddings })
      : store.list({ tier, limit, cursor, includeEmbeddings });
    expect(Array.isArray(res.memories), 'list().memories is an array').toBe(true);
    expect(res.count, 'list().count = records returned').toBe(res.memories.length);
    expect(res.pagination.returned, 'pagination.returned').toBe(res.memories.length);
    expect(res.pagination.limit, 'pagination.limit').toBe(Math.min(limit, 1000));
    expect(res.memories.length, 'page within limit').toBeLessThanOrEqual(Math.min(limit, 1000));
    const c = store.counts();
    expect(pickCounts(res.tierCounts), 'list().tierCounts = counts()').toEqual(pickCounts(c));
    out.push(...res.memories);
    if (res.pagination.nextCursor === undefined) break;
    expect(typeof res.pagination.nextCursor, 'nextCursor is a string').toBe('string');
    cursor = res.pagination.nextCursor;
  }
  return out;
}

export function pickCounts(c: { hot: number; warm: number; cold: number; total: number }) {
  return { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
}

export interface PlainRecord {
  tier: string;
  id: string;
  content: string;
  metadata: unknown;
  confidence: number;
  activation: number;
  createdAt: number;
  lastAccessAt: number;
  accessCount: number;
  embeddingBits: number[];
}

export function toPlain(m: Memory): PlainRecord {
  const e = m.embedding;
  return {
    tier: m.tier,
    id: m.id,
    content: m.content,
    metadata: m.metadata,
    confidence: m.confidence,
    activation: m.activation,
    createdAt: m.createdAt,
    lastAccessAt: m.lastAccessAt,
    accessCount: m.accessCount,
    embeddingBits: e ? Array.from(new Uint32Array(e.buffer, e.byteOffset, e.length)) : [],
  };
}

export interface Snapshot {
  counts: { hot: number; warm: number; cold: number; total: number };
  records: PlainRecord[];
}

/** Everything a store holds (with embeddings), independent of iteration order. No side effects. */
export function snapshot(store: MemoryStore): Snapshot {
  const records = iterateAll(store, 'all', true).map(toPlain);
  records.sort((a, b) => (a.tier < b.tier ? -1 : a.tier > b.tier ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { counts: pickCounts(store.counts()), records };
}

// ---------------------------------------------------------------------------
// Errors

function checkError(e: unknown, code: string, what: string): TierStoreError {
  expect(e, `${what}: throws a TierStoreError`).toBeInstanceOf(TierStoreError);
  expect(e, `${what}: the error is an Error`).toBeInstanceOf(Error);
  const err = e as TierStoreError;
  expect(err.code, `${what}: error code (message: ${err.message})`).toBe(code);
  expect(typeof err.message, `${what}: message is a string`).toBe('string');
  expect(err.message.length, `${what}: message is not empty`).toBeGreaterThan(0);
  return err;
}

/** fn() must throw a TierStoreError with `code`. Returns it. */
export function expectTierStoreError(fn: () => unknown, code: string, what = 'call'): TierStoreError {
  let thrown: unknown;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    thrown = e;
  }
  expect(threw, `${what}: throws ${code}`).toBe(true);
  return checkError(thrown, code, what);
}

/** fn() must return a promise (never throw) that rejects with a TierStoreError with `code`. */
export async function expectRejection(fn: () => Promise<unknown>, code: string, what = 'call'): Promise<TierStoreError> {
  let p: Promise<unknown>;
  try {
    p = fn();
  } catch (e) {
    expect.fail(`${what}: threw synchronously (${String(e)}) instead of returning a rejected promise`);
  }
  expect(p, `${what}: returns a promise`).toBeInstanceOf(Promise);
  let rejected = false;
  let reason: unknown;
  try {
    await p;
  } catch (e) {
    rejected = true;
    reason = e;
  }
  expect(rejected, `${what}: the promise rejects with ${code}`).toBe(true);
  return checkError(reason, code, what);
}

// ---------------------------------------------------------------------------
// Small record builders

/** A simple valid record; `i` makes id, content and embedding distinct. */
/**
 * Puts `perTier` records in each tier, ids `h-0`, `w-0`, `c-0`, … (made by
 * `make(id, seed)`, seeds counting up from `firstSeed`), moving each to its tier.
 */
export function seedEachTier(
  store: MemoryStore, make: (id: string, seed: number) => MemoryInput, perTier = 3, firstSeed = 100,
): void {
  let seed = firstSeed;
  for (const tier of TIERS) {
    for (let i = 0; i < perTier; i++) {
      const id = `${tier[0]}-${i}`;
      store.put(make(id, seed++));
      expect(store.move(id, tier), `move(${id}, ${tier})`).toBe(true);
    }
  }
}

export function simpleRecord(i: number, dims: number, extra: Partial<MemoryInput> = {}): MemoryInput {
  const embedding = new Float32Array(dims);
  for (let d = 0; d < dims; d++) embedding[d] = Math.sin(i * 31 + d * 7 + 1);
  return {
    id: `rec-${String(i).padStart(6, '0')}`,
    content: `content of record ${i} — ünïcødé ${'x'.repeat(i % 17)}`,
    embedding,
    confidence: ((i * 37) % 101) / 100,
    metadata: { i, tag: `t${i % 5}` },
    createdAt: 1_700_000_000_000 + i,
    ...extra,
  };
}
