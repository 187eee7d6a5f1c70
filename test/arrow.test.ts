// iterate(...).arrow(): apache-arrow RecordBatches in the export schema.
// Every field read from a batch equals what get() returns (bytes, float32
// bits, metadata after JSON.parse) in every tier, with and without
// embeddings, across batch boundaries, sync and async; the filter applies;
// a batch stays within batchSize records and 256 MiB of string bytes; a
// yielded batch stays valid after close(); DuckDB reads the same values from
// the batches through the Parquet writer.
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBBlobValue, DuckDBInstance } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { writeParquet } from '../lib/export/parquet.js';
import type { Memory, MemoryInput, MemoryStore, Tier, TierSelector } from '../lib/index.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { expectTierStoreError, firstBitDifference, TIERS, useScratch } from './helpers/store.js';

const DIMS = 5;
const N = 150;

function inputs(): MemoryInput[] {
  const rng = mulberry32(3);
  return Array.from({ length: N }, (_, i) => ({
    id: i % 10 === 0 ? `\ufeffid-${i}-🚀` : `id-${i}`,
    content: i % 7 === 0 ? '' : `content ${i} ${'ü'.repeat(i % 13)} \u0000 end`,
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: rng(),
    activation: rng(),
    createdAt: i % 11 === 5 ? -86_400_000 * i : 1_700_000_000_000 + i,
    metadata: i % 4 === 0 ? {} : { i, tags: ['a', i % 2 === 0], nested: { s: 'é"\\' } },
  }));
}

/** Keeps a leading U+FEFF, which apache-arrow's own string decoding drops. */
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** String `row` of a Utf8 column, decoded from its bytes. */
function str(batch: arrow.RecordBatch, name: string, row: number): string {
  const data = batch.getChild(name)!.data[0]!;
  const offsets = data.valueOffsets as Int32Array;
  return decoder.decode(data.values.subarray(offsets[row]!, offsets[row + 1]!));
}

/** Record `row` of an Arrow batch, read column by column. */
function rowOf(batch: arrow.RecordBatch, row: number) {
  const get = (name: string) => batch.getChild(name)!.get(row) as unknown;
  const embedding = batch.getChild('embedding')?.get(row) as arrow.Vector<arrow.Float32> | null | undefined;
  return {
    id: str(batch, 'id', row),
    content: str(batch, 'content', row),
    metadata: JSON.parse(str(batch, 'metadata', row)) as Record<string, unknown>,
    confidence: get('confidence') as number,
    activation: get('activation') as number,
    createdAt: Number(get('createdAt')),
    lastAccessAt: Number(get('lastAccessAt')),
    accessCount: Number(get('accessCount') as bigint),
    tier: get('tier') as Tier,
    embedding: embedding == null ? undefined : Float32Array.from(embedding.toArray()),
  };
}

/** Compares a batch row with the memory get() gives, field by field. */
function expectSame(row: ReturnType<typeof rowOf>, m: Memory, what: string): void {
  expect(Buffer.from(row.id).equals(Buffer.from(m.id)), `${what}: id`).toBe(true);
  expect(Buffer.from(row.content).equals(Buffer.from(m.content)), `${what}: content`).toBe(true);
  expect(row.metadata, `${what}: metadata`).toStrictEqual(m.metadata);
  expect(Object.is(row.confidence, m.confidence), `${what}: confidence`).toBe(true);
  expect(Object.is(row.activation, m.activation), `${what}: activation`).toBe(true);
  expect(row.createdAt, `${what}: createdAt`).toBe(m.createdAt);
  expect(row.lastAccessAt, `${what}: lastAccessAt`).toBe(m.lastAccessAt);
  expect(row.accessCount, `${what}: accessCount`).toBe(m.accessCount);
  expect(row.tier, `${what}: tier`).toBe(m.tier);
  if (row.embedding !== undefined) expect(firstBitDifference(row.embedding, m.embedding!), `${what}: embedding bits`).toBe(-1);
}

describe('iterate().arrow()', () => {
  const scratch = useScratch();

  function build(): MemoryStore {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS, hotCapacity: 1000 });
    store.putMany(inputs());
    inputs().forEach((input, i) => expect(store.move(input.id, TIERS[i % 3]!)).toBe(true));
    // Access statistics that differ from the defaults.
    for (let i = 0; i < N; i += 4) store.get(inputs()[i]!.id);
    expect(store.counts()).toMatchObject({ hot: N / 3, warm: N / 3, cold: N / 3 });
    return store;
  }

  /** Every record of a pass, as read from its batches; checks the batch sizes. */
  async function collect(store: MemoryStore, tier: TierSelector, includeEmbeddings: boolean, batchSize: number, sync: boolean) {
    const rows: Array<ReturnType<typeof rowOf>> = [];
    const take = (batch: arrow.RecordBatch) => {
      expect(batch.numRows).toBeGreaterThan(0);
      expect(batch.numRows).toBeLessThanOrEqual(batchSize);
      expect(batch.schema.fields.map((f) => f.name)).toEqual(
        ['id', 'content', 'metadata', 'confidence', 'activation', 'createdAt', 'lastAccessAt', 'accessCount', 'tier',
          ...(includeEmbeddings ? ['embedding'] : [])]);
      for (let r = 0; r < batch.numRows; r++) rows.push(rowOf(batch, r));
    };
    const batches = store.iterate({ tier, includeEmbeddings, batchSize }).arrow();
    if (sync) for (const b of batches) take(b);
    else for await (const b of batches) take(b);
    return rows;
  }

  it('every field equals get(), in every tier, with and without embeddings, across batch boundaries, sync and async', async () => {
    const store = build();
    let checked = 0;
    for (const tier of ['all', 'hot', 'warm', 'cold'] as TierSelector[]) {
      for (const includeEmbeddings of [false, true]) {
        for (const [batchSize, sync] of [[7, true], [1024, false], [1, true]] as const) {
          const rows = await collect(store, tier, includeEmbeddings, batchSize, sync);
          const want = tier === 'all' ? N : N / 3;
          expect(rows.length, `${tier} ${batchSize}`).toBe(want);
          expect(new Set(rows.map((r) => r.id)).size, 'each record once').toBe(want);
          // 'all' yields hot, then warm, then cold.
          if (tier === 'all') expect(rows.map((r) => r.tier)).toEqual([...rows.map((r) => r.tier)].sort((a, b) => TIERS.indexOf(a) - TIERS.indexOf(b)));
          const before = new Map(rows.map((r) => [r.id, r]));
          for (const [id, row] of before) {
            expect(row.embedding === undefined, 'embedding only when asked').toBe(!includeEmbeddings);
            // get() counts an access: compare before it.
            const m = store.get(id, { includeEmbedding: true })!;
            expectSame(row, { ...m, accessCount: m.accessCount - 1, lastAccessAt: row.lastAccessAt }, `${tier} ${id}`);
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(2 * 3 * (N + N));
  });

  it('the filter option applies; a bad one is INVALID_ARGUMENT before any batch', async () => {
    const store = build();
    const filter = { metadata: { tags: true }, minConfidence: 0.3 };
    const want = [...store.iterate({ filter })].map((m) => m.id).sort();
    expect(want.length).toBeGreaterThan(5);
    const got: string[] = [];
    for await (const b of store.iterate({ filter, batchSize: 4 }).arrow()) {
      for (let r = 0; r < b.numRows; r++) got.push(str(b, 'id', r));
    }
    expect(got.sort()).toEqual(want);
    expectTierStoreError(() => store.iterate({ filter: { metadata: { tags: [] } } }).arrow(), 'INVALID_ARGUMENT', 'empty array');
  });

  it('a yielded batch belongs to the caller: still readable after more batches and after close(); close stops the pass', () => {
    const store = build();
    const it = store.iterate({ batchSize: 10, includeEmbeddings: true }).arrow()[Symbol.iterator]();
    const first = it.next().value as arrow.RecordBatch;
    const copy = Array.from({ length: first.numRows }, (_, r) => rowOf(first, r));
    it.next();
    store.close();
    expectTierStoreError(() => it.next(), 'STORE_CLOSED', 'next after close');
    for (let r = 0; r < first.numRows; r++) expect(rowOf(first, r)).toStrictEqual(copy[r]);
  });

  it('records yielded exactly once while writes and migrations happen between batches', () => {
    const store = build();
    const seen = new Map<string, number>();
    let round = 0;
    for (const b of store.iterate({ batchSize: 9 }).arrow()) {
      for (let r = 0; r < b.numRows; r++) seen.set(str(b, 'id', r), (seen.get(str(b, 'id', r)) ?? 0) + 1);
      // New records (never yielded: written after the pass began) and moves of unyielded ones.
      store.put({ id: `new-${round}`, content: 'n', embedding: [1, 2, 3, 4, 5] });
      const victim = inputs()[(round * 37) % N]!.id;
      if (!seen.has(victim)) store.move(victim, TIERS[round % 3]!);
      round++;
    }
    expect(round).toBeGreaterThan(10);
    for (const input of inputs()) expect(seen.get(input.id), input.id).toBe(1);
    expect(seen.size).toBe(N);
  });

  it('a batch holds at most 256 MiB of string bytes; larger contents split batches (one record at least each)', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: 2 });
    const big = 60 * 1024 * 1024;
    const records = Array.from({ length: 6 }, (_, i) => ({
      id: `big-${i}`, content: String.fromCharCode(97 + i).repeat(big - i), embedding: [1, i],
    }));
    for (const r of records) store.put(r);
    const sizes: number[] = [];
    const contents = new Map<string, number>();
    for (const b of store.iterate({ batchSize: 100 }).arrow()) {
      let bytes = 0;
      for (let r = 0; r < b.numRows; r++) {
        const id = str(b, 'id', r);
        const content = str(b, 'content', r);
        bytes += Buffer.byteLength(id) + content.length + Buffer.byteLength(str(b, 'metadata', r));
        contents.set(id, content.length);
        expect(content[0]).toBe(String.fromCharCode(97 + Number(id.slice(4))));
      }
      expect(bytes).toBeLessThanOrEqual(256 * 1024 * 1024);
      sizes.push(b.numRows);
    }
    expect(sizes.length).toBeGreaterThan(1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(6);
    expect([...contents.entries()].sort()).toEqual(records.map((r) => [r.id, r.content.length]));
  });

  it('DuckDB reads back from the batches (through the Parquet writer) exactly what get() returns', async () => {
    const store = build();
    const dir = scratch.dir();
    const file = path.join(dir, 'scan.parquet');
    const it = store.iterate({ includeEmbeddings: true, batchSize: 32 }).arrow()[Symbol.iterator]();
    const out = fs.openSync(file, 'w');
    try {
      await writeParquet(
        () => {
          const r = it.next();
          return r.done ? undefined : r.value;
        },
        async (chunk) => {
          fs.writeSync(out, chunk);
        },
        { rowGroupSize: 64, compression: 'zstd', keyValueMetadata: new Map() },
      );
    } finally {
      fs.closeSync(out);
    }
    const duck = await DuckDBInstance.create(':memory:');
    const sql = await duck.connect();
    try {
      const quoted = `'${file.replaceAll("'", "''")}'`;
      const rows = (await sql.runAndReadAll(
        `SELECT encode(id), encode(content), metadata, confidence, activation, epoch_ms(createdAt), accessCount, tier, embedding
         FROM read_parquet(${quoted})`)).getRows();
      expect(rows.length).toBe(N);
      const utf8 = (value: unknown): string => Buffer.from((value as DuckDBBlobValue).bytes).toString('utf8');
      for (const row of rows) {
        const id = utf8(row[0]);
        const m = store.get(id, { includeEmbedding: true })!;
        expect(m, id).toBeDefined();
        expect(utf8(row[1])).toBe(m.content);
        expect(JSON.parse(row[2] as string)).toStrictEqual(m.metadata);
        expect(Math.fround(row[3] as number)).toBe(m.confidence);
        expect(Math.fround(row[4] as number)).toBe(m.activation);
        expect(Number(row[5] as bigint)).toBe(m.createdAt);
        expect(Number(row[6] as bigint)).toBe(m.accessCount - 1);
        expect(row[7]).toBe(m.tier);
        const values = Float32Array.from((row[8] as { items: number[] }).items);
        expect(firstBitDifference(values, m.embedding!)).toBe(-1);
      }
    } finally {
      sql.closeSync();
      duck.closeSync();
    }
  });
});
