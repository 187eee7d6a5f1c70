// Export and import (lib/export.ts, docs/export.md): round trips through Parquet,
// Arrow IPC and JSONL for every tier and for 'all' (every field compared
// exactly: byte-exact strings, bit-exact floats, deep-equal metadata, the
// tier), the files read by other readers (DuckDB for Parquet, apache-arrow
// for Arrow IPC, JSON.parse for JSONL), files written by other tools, tier
// placement on import, streaming to a slow stream, bounded memory on a large
// tier (child process), and every error path with what it leaves behind.
// Budget: about 30 s, most of it the bounded-memory child.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';

import { DuckDBBlobValue, DuckDBInstance, DuckDBListValue, type DuckDBConnection } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { exportStore, formatFromPath, importFile, type ExportFormat } from '../lib/export.js';
import type { Memory, MemoryInput, MemoryStore, Tier, TierSelector } from '../lib/index.js';
import { REPO_ROOT, spawnAsync } from './helpers/child.js';
import { contentOfBytes, mulberry32, randomEmbedding } from './helpers/random.js';
import {
  expectRejection,
  expectSameString,
  firstBitDifference,
  iterateAll,
  useScratch,
  type Scratch,
} from './helpers/store.js';

const DIMS = 13; // not a multiple of 8 (nor of 4)
const FORMATS: readonly ExportFormat[] = ['jsonl', 'parquet', 'arrow'];
const SELECTORS: readonly TierSelector[] = ['hot', 'warm', 'cold', 'all'];
const EXTENSION: Record<ExportFormat, string> = { jsonl: 'jsonl', parquet: 'parquet', arrow: 'arrow' };

// ---------------------------------------------------------------------------
// Source data: awkward strings, nested metadata, special floats, spread over tiers

const CONTENTS = [
  '',
  'emoji 😀🧠🚀 and multi-byte ü ß 日本語 한국어 𝄞',
  'nul\0inside\0and at the end\0',
  '\uFEFFstarts with a byte order mark',
  'line\nbreaks\r\nand\rcarriage returns\u2028separators\u2029',
  '"quotes", \\backslashes\\, {"json": [1, 2]}, tabs\tand \u0001 controls',
  ' leading and trailing spaces ',
];

function sourceRecords(): MemoryInput[] {
  const rng = mulberry32(20240508);
  const out: MemoryInput[] = [];
  for (let i = 0; i < 240; i++) {
    const embedding = randomEmbedding(rng, DIMS, 'float32');
    if (i % 5 === 0) embedding[0] = -0;
    if (i % 7 === 0) embedding[1] = 1e-45; // smallest denormal
    if (i % 11 === 0) embedding[2] = -3.4028234663852886e38; // -FLT_MAX
    if (i === 3) embedding.fill(0);
    const content =
      i === 17
        ? contentOfBytes(rng, 200_000, 0.05)
        : i < CONTENTS.length * 3
          ? CONTENTS[i % CONTENTS.length]!
          : contentOfBytes(rng, 20 + Math.floor(rng() * 400), 0.1);
    const metadata: Record<string, unknown> =
      i % 4 === 0
        ? {}
        : {
            i,
            nested: { list: [1, 'two', { three: [null, true, false] }], deep: { deeper: { deepest: 'ключ 😀' } } },
            'ключ 🔑': -1.5e-7,
            big: 2 ** 53 - 1,
            empty: {},
            none: [],
            text: 'nul\0 and "quotes"',
          };
    const input: MemoryInput = {
      id: i % 9 === 0 ? `id-${i}-émoji-😀-nul\0-end` : `rec-${String(i).padStart(4, '0')}`,
      content,
      embedding,
      metadata,
      confidence: i % 10 === 0 ? 0 : i % 10 === 1 ? 1 : rng(),
      createdAt: i === 4 ? -8.64e15 : i === 5 ? 8.64e15 : i === 6 ? 0 : 1_700_000_000_000 + i * 1013,
    };
    if (i % 3 !== 0) input.activation = rng();
    out.push(input);
  }
  return out;
}

/** Every record of a store (with embeddings), by id. */
function recordsById(store: MemoryStore, tier: TierSelector = 'all'): Map<string, Memory> {
  const map = new Map<string, Memory>();
  for (const m of iterateAll(store, tier, true)) map.set(m.id, m);
  return map;
}

/** Asserts the imported record equals the exported one in every field an import restores. */
function expectSameRecord(actual: Memory | undefined, expected: Memory, where: string, checkTier: boolean): void {
  const w = `${where} [${JSON.stringify(expected.id)}]`;
  expect(actual, `${w}: present`).toBeDefined();
  const m = actual!;
  expectSameString(m.id, expected.id, `${w}.id`);
  expectSameString(m.content, expected.content, `${w}.content`);
  expect(m.metadata, `${w}.metadata`).toStrictEqual(expected.metadata);
  expect(Object.is(m.confidence, expected.confidence), `${w}.confidence ${m.confidence} vs ${expected.confidence}`).toBe(true);
  expect(Object.is(m.activation, expected.activation), `${w}.activation ${m.activation} vs ${expected.activation}`).toBe(true);
  expect(m.createdAt, `${w}.createdAt`).toBe(expected.createdAt);
  const diff = firstBitDifference(m.embedding!, expected.embedding!);
  expect(diff, `${w}.embedding bit-exact (first difference at ${diff})`).toBe(-1);
  if (checkTier) expect(m.tier, `${w}.tier`).toBe(expected.tier);
}

function expectedOfSelector(all: Map<string, Memory>, tier: TierSelector): Memory[] {
  return [...all.values()].filter((m) => tier === 'all' || m.tier === tier);
}

function countsOf(records: Iterable<Memory>): { hot: number; warm: number; cold: number } {
  const c = { hot: 0, warm: 0, cold: 0 };
  for (const m of records) c[m.tier]++;
  return c;
}

function filesIn(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

// ---------------------------------------------------------------------------

describe('export and import', () => {
  const scratch: Scratch = useScratch('all');
  let dir: string;
  let source: MemoryStore;
  /** The source store's records, read once before any export. */
  let all: Map<string, Memory>;
  let sourceCounts: { hot: number; warm: number; cold: number; total: number };
  let duck: DuckDBInstance;
  let sql: DuckDBConnection;

  beforeAll(async () => {
    dir = scratch.dir();
    source = scratch.open(path.join(dir, 'source'), { dimensions: DIMS, hotCapacity: 40, warmCapacity: 60 });
    const records = sourceRecords();
    for (let i = 0; i < records.length; i += 30) source.putMany(records.slice(i, i + 30));
    source.migrate();
    // Access statistics that differ from the defaults, to see them exported.
    for (let i = 0; i < records.length; i += 3) source.get(records[i]!.id);
    source.get(records[0]!.id);
    all = recordsById(source);
    expect(all.size).toBe(240);
    sourceCounts = { ...countsOf(all.values()), total: 240 };
    expect(source.counts()).toEqual(sourceCounts);
    for (const tier of ['hot', 'warm', 'cold'] as const) expect(sourceCounts[tier], `records in ${tier}`).toBeGreaterThan(20);
    duck = await DuckDBInstance.create(':memory:');
    sql = await duck.connect();
  });

  afterAll(() => {
    sql?.closeSync();
    duck?.closeSync();
  });

  const fresh = (name: string, options: Parameters<Scratch['open']>[1] = {}): MemoryStore =>
    scratch.open(path.join(dir, name), { dimensions: DIMS, ...options });

  describe.each(FORMATS)('%s', (format) => {
    test.each(SELECTORS)('tier %s: export, import into a fresh store, every field and the tier come back', async (tier) => {
      const file = path.join(dir, `round-${tier}.${EXTENSION[format]}`);
      const expected = expectedOfSelector(all, tier);
      const progress: Array<[number, number]> = [];
      const exported = await exportStore(source, file, {
        format,
        tier,
        batchSize: 32,
        onProgress: (done, total) => progress.push([done, total]),
      });
      expect(exported.records).toBe(expected.length);
      expect(exported.bytes).toBe(fs.statSync(file).size);
      expect(progress.length, 'one progress call per batch').toBeGreaterThanOrEqual(Math.ceil(expected.length / 32));
      expect(progress.at(-1)).toEqual([expected.length, expected.length]);
      for (let i = 1; i < progress.length; i++) expect(progress[i]![0]).toBeGreaterThan(progress[i - 1]![0]);

      const target = fresh(`round-${format}-${tier}`);
      const imported = await importFile(target, file, { batchSize: 50 });
      expect(imported.records).toBe(expected.length);
      const want = countsOf(expected);
      expect(target.counts()).toEqual({ ...want, total: expected.length });
      const got = recordsById(target);
      expect(got.size).toBe(expected.length);
      for (const m of expected) {
        expectSameRecord(got.get(m.id), m, `${format}/${tier}`, true);
        expect(got.get(m.id)!.accessCount, 'access statistics restart on import').toBe(0);
      }
    });

    test('keepTiers: false puts every record into hot, like put()', async () => {
      const file = path.join(dir, `flat.${EXTENSION[format]}`);
      await exportStore(source, file, { format });
      const target = fresh(`flat-${format}`, { hotCapacity: 1000 });
      await importFile(target, file, { keepTiers: false });
      expect(target.counts()).toEqual({ hot: 240, warm: 0, cold: 0, total: 240 });
      const got = recordsById(target);
      for (const m of all.values()) expectSameRecord(got.get(m.id), m, `${format} flat`, false);
    });

    test('an empty tier exports a valid file that imports as nothing', async () => {
      const empty = fresh(`empty-${format}`);
      const file = path.join(dir, `empty.${EXTENSION[format]}`);
      const result = await exportStore(empty, file, { format, tier: 'warm' });
      expect(result.records).toBe(0);
      expect(fs.existsSync(file)).toBe(true);
      const target = fresh(`empty-target-${format}`);
      expect(await importFile(target, file)).toEqual({ records: 0 });
      expect(target.counts().total).toBe(0);
    });

    test('wrong dimensions: DIMENSION_MISMATCH and nothing imported', async () => {
      const file = path.join(dir, `dims.${EXTENSION[format]}`);
      await exportStore(source, file, { format, tier: 'cold' });
      const target = scratch.open(path.join(dir, `dims-${format}`), { dimensions: 8 });
      const error = await expectRejection(() => importFile(target, file), 'DIMENSION_MISMATCH', `${format} into 8 dims`);
      expect(error.message).toContain('13');
      expect(error.message).toContain(file);
      expect(target.counts().total).toBe(0);
    });
  });

  test('DuckDB reads the Parquet export: count, ids, contents, metadata, numbers and embeddings match exactly', async () => {
    const file = path.join(dir, 'duck.parquet');
    await exportStore(source, file, { format: 'parquet', batchSize: 64 });
    const quoted = `'${file.replaceAll("'", "''")}'`;
    const count = await sql.runAndReadAll(`SELECT count(*) FROM read_parquet(${quoted})`);
    expect(count.getRows()[0]![0]).toBe(240n);

    const described = await sql.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${quoted})`);
    const types = Object.fromEntries(described.getRows().map((r) => [r[0] as string, r[1] as string]));
    expect(types).toMatchObject({
      id: 'VARCHAR',
      content: 'VARCHAR',
      metadata: 'VARCHAR',
      confidence: 'FLOAT',
      activation: 'FLOAT',
      createdAt: 'TIMESTAMP WITH TIME ZONE',
      accessCount: 'BIGINT',
      tier: 'VARCHAR',
      embedding: 'FLOAT[]',
    });

    const reader = await sql.runAndReadAll(
      `SELECT encode(id), encode(content), metadata, confidence, activation, epoch_ms(createdAt), epoch_ms(lastAccessAt),
              accessCount, tier, embedding, len(embedding)
       FROM read_parquet(${quoted})`,
    );
    const rows = reader.getRows();
    expect(rows.length).toBe(240);
    const seen = new Set<string>();
    // Strings compared as UTF-8 bytes: the node client drops a leading U+FEFF when it makes JS strings.
    const utf8 = (value: unknown): Buffer => Buffer.from((value as DuckDBBlobValue).bytes);
    for (const row of rows) {
      const id = utf8(row[0]).toString('utf8');
      const m = all.get(id);
      expect(m, `DuckDB id ${JSON.stringify(id)} is a source id`).toBeDefined();
      expect(utf8(row[0]).equals(Buffer.from(m!.id, 'utf8')), `duckdb id bytes of ${id}`).toBe(true);
      seen.add(id);
      expect(utf8(row[1]).equals(Buffer.from(m!.content, 'utf8')), `duckdb content bytes of ${id}`).toBe(true);
      expect(JSON.parse(row[2] as string)).toStrictEqual(m!.metadata);
      expect(Math.fround(row[3] as number)).toBe(m!.confidence);
      expect(Math.fround(row[4] as number)).toBe(m!.activation);
      expect(Number(row[5] as bigint)).toBe(m!.createdAt);
      expect(Number(row[6] as bigint)).toBe(m!.lastAccessAt);
      expect(Number(row[7] as bigint)).toBe(m!.accessCount);
      expect(row[8]).toBe(m!.tier);
      expect(row[9]).toBeInstanceOf(DuckDBListValue);
      const values = Float32Array.from((row[9] as DuckDBListValue).items as number[]);
      expect(row[10]).toBe(BigInt(DIMS));
      expect(firstBitDifference(values, m!.embedding!), `duckdb embedding of ${id}`).toBe(-1);
    }
    expect(seen.size).toBe(240);

    // The schema metadata is there for Parquet readers too, and the list casts to a fixed-size array.
    const kv = await sql.runAndReadAll(`SELECT decode(key), decode(value) FROM parquet_kv_metadata(${quoted})`);
    const keys = Object.fromEntries(kv.getRows().map((r) => [r[0] as string, r[1] as string]));
    expect(keys['tierstore.dimensions']).toBe(String(DIMS));
    expect(keys['tierstore.format']).toBe('tierstore.memories/1');
    const cast = await sql.runAndReadAll(
      `SELECT count(*) FROM read_parquet(${quoted}) WHERE array_length(embedding::FLOAT[${DIMS}]) = ${DIMS}`,
    );
    expect(cast.getRows()[0]![0]).toBe(240n);
  });

  test('a Parquet file rewritten by DuckDB (LIST<FLOAT>, microsecond timestamps) imports exactly', async () => {
    const ours = path.join(dir, 'for-duck.parquet');
    const theirs = path.join(dir, 'from-duck.parquet');
    await exportStore(source, ours, { format: 'parquet' });
    await sql.run(`COPY (SELECT * FROM read_parquet('${ours}') ORDER BY id) TO '${theirs}' (FORMAT parquet)`);
    const target = fresh('from-duck');
    expect(await importFile(target, theirs)).toEqual({ records: 240 });
    const got = recordsById(target);
    for (const m of all.values()) expectSameRecord(got.get(m.id), m, 'from duckdb', true);
  });

  test('Arrow IPC read back by apache-arrow: file and stream formats, FixedSizeList<Float32> embedding, every column', async () => {
    const fileFormat = path.join(dir, 'check.arrow');
    const streamFormat = path.join(dir, 'check.arrows');
    await exportStore(source, fileFormat, { format: 'arrow', batchSize: 100 });
    await exportStore(source, streamFormat, { format: 'arrow', batchSize: 100 });
    expect(fs.readFileSync(fileFormat).subarray(0, 6).toString()).toBe('ARROW1');
    expect(fs.readFileSync(streamFormat).subarray(0, 6).toString()).not.toBe('ARROW1');

    const fromFile = arrow.tableFromIPC(fs.readFileSync(fileFormat));
    const reader = arrow.RecordBatchReader.from(fs.readFileSync(streamFormat));
    const fromStream = new arrow.Table([...reader]);
    for (const table of [fromFile, fromStream]) {
      expect(table.numRows).toBe(240);
      const schema = table.schema;
      expect(schema.metadata.get('tierstore.dimensions')).toBe(String(DIMS));
      expect(schema.metadata.get('tierstore.tier')).toBe('all');
      const type = (name: string): arrow.DataType => schema.fields.find((f) => f.name === name)!.type;
      const embedding = type('embedding');
      expect(arrow.DataType.isFixedSizeList(embedding)).toBe(true);
      expect((embedding as arrow.FixedSizeList).listSize).toBe(DIMS);
      expect(arrow.DataType.isFloat((embedding as arrow.FixedSizeList).children[0]!.type)).toBe(true);
      expect(((embedding as arrow.FixedSizeList).children[0]!.type as arrow.Float).precision).toBe(arrow.Precision.SINGLE);
      expect(arrow.DataType.isTimestamp(type('createdAt'))).toBe(true);
      expect((type('createdAt') as arrow.Timestamp).unit).toBe(arrow.TimeUnit.MILLISECOND);
      expect((type('createdAt') as arrow.Timestamp).timezone).toBe('UTC');
      expect(arrow.DataType.isInt(type('accessCount'))).toBe(true);
      expect(schema.fields.every((f) => !f.nullable)).toBe(true);

      for (const batch of table.batches) {
        const embeddings = batch.getChild('embedding')!.data[0]!.children[0]!.values as Float32Array;
        const created = batch.getChild('createdAt')!.data[0]!.values as BigInt64Array;
        const lastAccess = batch.getChild('lastAccessAt')!.data[0]!.values as BigInt64Array;
        const accessCount = batch.getChild('accessCount')!.data[0]!.values as BigInt64Array;
        for (let i = 0; i < batch.numRows; i++) {
          const id = batch.getChild('id')!.get(i) as string;
          const m = all.get(id)!;
          expect(m, `arrow id ${JSON.stringify(id)}`).toBeDefined();
          expect(batch.getChild('tier')!.get(i)).toBe(m.tier);
          expect(JSON.parse(batch.getChild('metadata')!.get(i) as string)).toStrictEqual(m.metadata);
          expect(batch.getChild('confidence')!.get(i)).toBe(m.confidence);
          expect(Number(created[i])).toBe(m.createdAt);
          expect(Number(lastAccess[i])).toBe(m.lastAccessAt);
          expect(Number(accessCount[i])).toBe(m.accessCount);
          expect(firstBitDifference(embeddings.subarray(i * DIMS, (i + 1) * DIMS), m.embedding!)).toBe(-1);
        }
      }
    }
  });

  test('JSONL: one JSON object per line, floats parse back bit-exact (including -0)', async () => {
    const file = path.join(dir, 'check.jsonl');
    await exportStore(source, file, { format: 'jsonl' });
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(240);
    let negativeZeros = 0;
    for (const line of lines) {
      const record = JSON.parse(line) as Record<string, unknown>;
      const m = all.get(record.id as string)!;
      expect(m).toBeDefined();
      expectSameString(record.content, m.content, 'jsonl content');
      expect(record.metadata).toStrictEqual(m.metadata);
      expect(record).toMatchObject({
        confidence: m.confidence,
        activation: m.activation,
        createdAt: m.createdAt,
        lastAccessAt: m.lastAccessAt,
        accessCount: m.accessCount,
        tier: m.tier,
      });
      const embedding = Float32Array.from(record.embedding as number[]);
      expect(firstBitDifference(embedding, m.embedding!)).toBe(-1);
      negativeZeros += (record.embedding as number[]).filter((v) => Object.is(v, -0)).length;
    }
    expect(negativeZeros).toBeGreaterThanOrEqual(48);
  });

  test('export to a slow stream waits for it, writes the same bytes as to a file, and ends it', async () => {
    for (const format of ['jsonl', 'arrow', 'parquet'] as const) {
      const file = path.join(dir, `same.${EXTENSION[format]}`);
      await exportStore(source, file, { format, batchSize: 16 });
      const chunks: Buffer[] = [];
      let maxPending = 0;
      let pending = 0;
      let finished = false;
      const slow = new Writable({
        highWaterMark: 1024,
        write(chunk: Buffer, _encoding, callback) {
          pending++;
          maxPending = Math.max(maxPending, pending);
          chunks.push(Buffer.from(chunk));
          setTimeout(() => {
            pending--;
            callback();
          }, 1);
        },
        final(callback) {
          finished = true;
          callback();
        },
      });
      const result = await exportStore(source, slow, { format, batchSize: 16 });
      const bytes = Buffer.concat(chunks);
      expect(finished, `${format}: the stream was ended`).toBe(true);
      expect(result.bytes).toBe(bytes.length);
      if (format === 'parquet') {
        // The footer's key-value metadata comes out in hash order, so compare what it holds.
        expect(bytes.length).toBe(fs.statSync(file).size);
        const table = arrow.tableFromIPC(parquet.readParquet(bytes).intoIPCStream());
        expect(table.numRows).toBe(240);
        expect(new Set(table.getChild('id')!.toArray() as string[])).toEqual(new Set(all.keys()));
      } else {
        expect(bytes.equals(fs.readFileSync(file)), `${format}: same bytes as the file export`).toBe(true);
      }
      expect(maxPending, 'writes waited for the stream (one in flight at a time)').toBe(1);
    }
    const open = new Writable({ write: (_c, _e, cb) => cb() });
    await exportStore(source, open, { format: 'jsonl', tier: 'hot', end: false });
    expect(open.writableEnded).toBe(false);
  });

  test('records already in the target stay as they were; imported ones land in their tiers', async () => {
    const file = path.join(dir, 'merge.parquet');
    await exportStore(source, file, { format: 'parquet' });
    const target = fresh('merge', { hotCapacity: 1000, warmCapacity: 1000 });
    const own = (i: number, tier: Tier): MemoryInput => ({
      id: `own-${tier}-${i}`,
      content: `already here ${i}`,
      embedding: new Float32Array(DIMS).fill(i),
      metadata: { own: i },
    });
    target.putMany([0, 1, 2].map((i) => own(i, 'hot')));
    target.putMany([0, 1].map((i) => own(i, 'cold')));
    target.putMany([0, 1].map((i) => own(i, 'warm')));
    for (const i of [0, 1]) {
      target.move(`own-cold-${i}`, 'cold');
      target.move(`own-warm-${i}`, 'warm');
    }
    target.get('own-hot-0');
    target.get('own-hot-0');
    const before = recordsById(target);

    await importFile(target, file);
    const after = recordsById(target);
    expect(target.counts()).toEqual({
      hot: sourceCounts.hot + 3,
      warm: sourceCounts.warm + 2,
      cold: sourceCounts.cold + 2,
      total: 247,
    });
    for (const [id, m] of before) {
      const now = after.get(id)!;
      expectSameRecord(now, m, 'pre-existing', true);
      expect(now.accessCount, `${id}.accessCount`).toBe(m.accessCount);
      expect(now.lastAccessAt, `${id}.lastAccessAt`).toBe(m.lastAccessAt);
    }
    for (const m of all.values()) expectSameRecord(after.get(m.id), m, 'merged', true);
  });

  test("import does not migrate: tiers are kept even past the target's capacities, which apply at migrate()", async () => {
    const file = path.join(dir, 'capacity.arrow');
    await exportStore(source, file, { format: 'arrow' });
    const target = fresh('capacity', { hotCapacity: 5, warmCapacity: 10 });
    await importFile(target, file, { batchSize: 16 });
    expect(target.counts()).toEqual(sourceCounts);
    target.migrate();
    const counts = target.counts();
    expect(counts.hot).toBeLessThanOrEqual(5);
    expect(counts.warm).toBeLessThanOrEqual(10);
    expect(counts.total).toBe(240);
  });

  test('files from other tools: minimal columns, variable-length float64 lists, defaults for the rest', async () => {
    const ids = ['a', 'b', 'c'];
    const values = [
      [0.1, 0.2, 0.3],
      [1, -0, 1e-40],
      [-1, 2.5, 3.25],
    ].map((v) => [...v, ...new Array(DIMS - 3).fill(0.5)]);
    const table = arrow.tableFromArrays({ id: ids, content: ['x', '', 'z'] } as never);
    const embedding = arrow.vectorFromArray(values, new arrow.List(new arrow.Field('item', new arrow.Float64(), true)));
    const withEmbedding = table.assign(new arrow.Table({ embedding }));
    const arrowFile = path.join(dir, 'foreign.arrow');
    fs.writeFileSync(arrowFile, arrow.tableToIPC(withEmbedding, 'file'));
    const parquetFile = path.join(dir, 'foreign.parquet');
    fs.writeFileSync(
      parquetFile,
      parquet.writeParquet(parquet.Table.fromIPCStream(arrow.tableToIPC(withEmbedding, 'stream'))),
    );
    for (const file of [arrowFile, parquetFile]) {
      const target = fresh(`foreign-${path.extname(file).slice(1)}`);
      expect(await importFile(target, file)).toEqual({ records: 3 });
      const got = recordsById(target);
      expect(target.counts()).toEqual({ hot: 3, warm: 0, cold: 0, total: 3 });
      ids.forEach((id, i) => {
        const m = got.get(id)!;
        expect(m.confidence).toBe(0.5);
        expect(m.metadata).toStrictEqual({});
        expect(firstBitDifference(m.embedding!, Float32Array.from(values[i]!))).toBe(-1);
      });
    }
  });

  describe('errors', () => {
    test('bad options and unknown formats: INVALID_ARGUMENT, no file, store unchanged', async () => {
      const out = path.join(dir, 'bad-options.out');
      const before = filesIn(dir);
      await expectRejection(() => exportStore(source, out, { format: 'csv' as ExportFormat }), 'INVALID_ARGUMENT', 'csv');
      await expectRejection(() => exportStore(source, out, undefined as never), 'INVALID_ARGUMENT', 'no options');
      await expectRejection(
        () => exportStore(source, out, { format: 'jsonl', tier: 'lukewarm' as Tier }),
        'INVALID_ARGUMENT',
        'tier',
      );
      await expectRejection(() => exportStore(source, out, { format: 'jsonl', batchSize: 0 }), 'INVALID_ARGUMENT', 'batchSize');
      await expectRejection(
        () => exportStore(source, out, { format: 'parquet', compression: 'lz77' as never }),
        'INVALID_ARGUMENT',
        'compression',
      );
      expect(filesIn(dir)).toEqual(before);

      const target = fresh('bad-options');
      fs.writeFileSync(path.join(dir, 'data.csv'), 'id,content\n');
      const unknown = await expectRejection(() => importFile(target, path.join(dir, 'data.csv')), 'INVALID_ARGUMENT', 'csv');
      expect(unknown.message).toContain('options.format');
      await expectRejection(
        () => importFile(target, path.join(dir, 'data.csv'), { format: 'xml' as ExportFormat }),
        'INVALID_ARGUMENT',
        'xml',
      );
      await expectRejection(() => importFile(target, path.join(dir, 'x.jsonl'), { batchSize: 1.5 }), 'INVALID_ARGUMENT', 'batch');
      expect(target.counts().total).toBe(0);
      expect(formatFromPath('a/B.NDJSON')).toBe('jsonl');
      expect(formatFromPath('x.feather')).toBe('arrow');
      expect(formatFromPath('x.arrows')).toBe('arrow');
      expect(formatFromPath('x.parquet')).toBe('parquet');
      expect(formatFromPath('x.csv')).toBeUndefined();
    });

    test('missing input file or a directory: IO_ERROR naming it', async () => {
      const target = fresh('missing');
      const missing = path.join(dir, 'no-such-file.parquet');
      const error = await expectRejection(() => importFile(target, missing), 'IO_ERROR', 'missing');
      expect(error.message).toContain(missing);
      await expectRejection(() => importFile(target, dir, { format: 'jsonl' }), 'IO_ERROR', 'directory');
      expect(target.counts().total).toBe(0);
    });

    test('truncated or garbage Parquet and Arrow files: CORRUPTION naming the file, nothing imported', async () => {
      const parquetFile = path.join(dir, 'whole.parquet');
      const arrowFile = path.join(dir, 'whole.arrow');
      await exportStore(source, parquetFile, { format: 'parquet', batchSize: 50 });
      await exportStore(source, arrowFile, { format: 'arrow', batchSize: 50 });
      const damaged: Array<[string, Buffer]> = [];
      const p = fs.readFileSync(parquetFile);
      const a = fs.readFileSync(arrowFile);
      damaged.push(['truncated.parquet', p.subarray(0, Math.floor(p.length / 2))]);
      damaged.push(['no-footer.parquet', p.subarray(0, p.length - 8)]);
      damaged.push(['garbage.parquet', Buffer.from('PAR1 this is not a parquet file at all PAR1')]);
      damaged.push(['empty.parquet', Buffer.alloc(0)]);
      damaged.push(['truncated.arrow', a.subarray(0, Math.floor(a.length / 2))]);
      damaged.push(['garbage.arrow', Buffer.from('{"not": "arrow"}\n'.repeat(10))]);
      damaged.push(['empty.arrow', Buffer.alloc(0)]);
      for (const [name, bytes] of damaged) {
        const file = path.join(dir, name);
        fs.writeFileSync(file, bytes);
        const target = fresh(`damaged-${name}`);
        const error = await expectRejection(() => importFile(target, file), 'CORRUPTION', name);
        expect(error.message).toContain(file);
        expect(error.message).toContain('nothing was imported');
        expect(target.counts().total, `${name}: nothing imported`).toBe(0);
      }
    });

    test('a truncated Arrow stream, even one cut exactly between two batches: CORRUPTION before anything is imported', async () => {
      const file = path.join(dir, 'whole.arrows');
      await exportStore(source, file, { format: 'arrow', batchSize: 50 });
      const bytes = fs.readFileSync(file);
      // Inside the last batch's body (the end-of-stream marker is 8 bytes), and
      // at every message boundary (each message starts with 0xFFFFFFFF): a cut
      // there must not read as a complete, shorter stream.
      const cuts = [bytes.length - 40, bytes.length - 8];
      for (let at = 8; at < bytes.length - 8; at += 8) if (bytes.readUInt32LE(at) === 0xffffffff) cuts.push(at);
      expect(cuts.length, 'a schema and several batches').toBeGreaterThan(4);
      for (const at of cuts) {
        const cut = path.join(dir, `cut-${at}.arrows`);
        fs.writeFileSync(cut, bytes.subarray(0, at));
        const target = fresh(`cut-stream-${at}`);
        const error = await expectRejection(() => importFile(target, cut, { batchSize: 50 }), 'CORRUPTION', `cut at ${at}`);
        expect(error.message).toContain(cut);
        expect(error.message).toMatch(/end-of-stream marker.*nothing was imported/);
        expect(target.counts().total, `cut at ${at}`).toBe(0);
      }
    });

    test('JSONL: a broken line is CORRUPTION, a bad value names line and id; earlier batches stay, later ones do not', async () => {
      const file = path.join(dir, 'lines.jsonl');
      await exportStore(source, file, { format: 'jsonl' });
      const lines = fs.readFileSync(file, 'utf8').split('\n').slice(0, -1);
      expect(lines.length).toBe(240);

      const broken = [...lines];
      broken[56] = broken[56]!.slice(0, 40); // line 57
      fs.writeFileSync(path.join(dir, 'broken.jsonl'), broken.join('\n') + '\n');
      const t1 = fresh('broken-jsonl');
      const e1 = await expectRejection(() => importFile(t1, path.join(dir, 'broken.jsonl'), { batchSize: 20 }), 'CORRUPTION', 'broken');
      expect(e1.message).toContain('line 57');
      expect(t1.counts().total, 'two whole batches of 20 before line 57').toBe(40);

      const invalid = [...lines];
      const record = JSON.parse(invalid[90]!) as Record<string, unknown>;
      record.confidence = 2;
      invalid[90] = JSON.stringify(record); // line 91
      fs.writeFileSync(path.join(dir, 'invalid.jsonl'), invalid.join('\n'));
      const t2 = fresh('invalid-jsonl');
      const e2 = await expectRejection(() => importFile(t2, path.join(dir, 'invalid.jsonl'), { batchSize: 20 }), 'INVALID_ARGUMENT', 'bad value');
      expect(e2.message).toContain('line 91');
      expect(e2.message).toContain(JSON.stringify(record.id));
      expect(e2.message).toContain('confidence');
      expect(e2.message).toContain('the 80 records of the batches before it were imported');
      expect(t2.counts().total).toBe(80);

      const wrongTier = [...lines];
      const r3 = JSON.parse(wrongTier[0]!) as Record<string, unknown>;
      r3.tier = 'lukewarm';
      wrongTier[0] = JSON.stringify(r3);
      fs.writeFileSync(path.join(dir, 'tier.jsonl'), wrongTier.join('\n'));
      const t3 = fresh('tier-jsonl');
      const e3 = await expectRejection(() => importFile(t3, path.join(dir, 'tier.jsonl')), 'INVALID_ARGUMENT', 'tier');
      expect(e3.message).toContain('line 1');
      expect(t3.counts().total).toBe(0);

      // Windows line ends and a missing final newline read the same.
      fs.writeFileSync(path.join(dir, 'crlf.jsonl'), lines.slice(0, 30).join('\r\n'));
      const t5 = fresh('crlf-jsonl');
      expect(await importFile(t5, path.join(dir, 'crlf.jsonl'))).toEqual({ records: 30 });
      const crlf = recordsById(t5);
      for (const line of lines.slice(0, 30)) {
        const id = (JSON.parse(line) as { id: string }).id;
        expectSameRecord(crlf.get(id), all.get(id)!, 'crlf', true);
      }

      const badUtf8 = Buffer.concat([Buffer.from(lines[0]! + '\n'), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a])]);
      fs.writeFileSync(path.join(dir, 'utf8.jsonl'), badUtf8);
      const t4 = fresh('utf8-jsonl');
      const e4 = await expectRejection(() => importFile(t4, path.join(dir, 'utf8.jsonl')), 'CORRUPTION', 'utf8');
      expect(e4.message).toContain('line 2');
      expect(e4.message).toContain('UTF-8');
      expect(t4.counts().total).toBe(0);
    });

    test('a bad value in a columnar file names the row and the id', async () => {
      const table = arrow.tableFromArrays({
        id: ['r1', 'r2', 'r3'],
        content: ['a', 'b', 'c'],
        confidence: Float64Array.of(0.5, 0.25, 7),
      } as never);
      const embedding = arrow.vectorFromArray(
        [0, 1, 2].map(() => new Array(DIMS).fill(0.25)),
        new arrow.FixedSizeList(DIMS, new arrow.Field('item', new arrow.Float32(), false)),
      );
      const file = path.join(dir, 'bad-row.arrow');
      fs.writeFileSync(file, arrow.tableToIPC(table.assign(new arrow.Table({ embedding })), 'file'));
      const target = fresh('bad-row');
      const error = await expectRejection(() => importFile(target, file), 'INVALID_ARGUMENT', 'bad row');
      expect(error.message).toContain('row 3');
      expect(error.message).toContain('"r3"');
      expect(error.message).toContain('confidence');
      expect(target.counts().total).toBe(0);
    });

    test('closed or read-only stores, a missing output directory, a failing export: no file is left behind', async () => {
      const closed = fresh('closed');
      closed.close();
      const before = filesIn(dir);
      await expectRejection(() => exportStore(closed, path.join(dir, 'closed.parquet'), { format: 'parquet' }), 'STORE_CLOSED', 'closed');
      await expectRejection(() => importFile(closed, path.join(dir, 'check.jsonl')), 'STORE_CLOSED', 'closed import');
      await expectRejection(
        () => exportStore(source, path.join(dir, 'no', 'such', 'dir.parquet'), { format: 'parquet' }),
        'IO_ERROR',
        'missing directory',
      );
      expect(filesIn(dir)).toEqual(before);

      const target = path.join(dir, 'failing.parquet');
      let calls = 0;
      const boom = new Error('stop after the first batch');
      await expect(
        exportStore(source, target, {
          format: 'parquet',
          batchSize: 20,
          onProgress: () => {
            if (++calls === 2) throw boom;
          },
        }),
      ).rejects.toBe(boom);
      expect(filesIn(dir), 'neither the target nor a temporary file').toEqual(before);

      const readOnlyPath = path.join(dir, 'read-only');
      fresh('read-only').close();
      const readOnly = scratch.open(readOnlyPath, { readOnly: true });
      fs.writeFileSync(path.join(dir, 'one.jsonl'), '');
      await expectRejection(() => importFile(readOnly, path.join(dir, 'one.jsonl')), 'READ_ONLY', 'read-only');
    });
  });

  test('bounded memory: exporting and importing 16k records (~68 MB of content) grows heap + external by a bounded few MB', async () => {
    const work = scratch.dir();
    const r = await spawnAsync(process.execPath, ['--expose-gc', path.join(REPO_ROOT, 'test/helpers/export-memory.cjs'), work, '16000'], { timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    interface Growth {
      samples: number;
      max: number;
      firstHalfMax: number;
      secondHalfMax: number;
    }
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      contentBytes: number;
      exported: { records: number };
      imported: { records: number };
      counts: { cold: number };
      exportGrowth: Growth;
      importGrowth: Growth;
      wasmAfter: number;
    };
    expect(result.exported.records).toBe(16_000);
    expect(result.imported.records).toBe(16_000);
    expect(result.counts.cold).toBe(16_000);
    expect(result.contentBytes).toBeGreaterThan(60 << 20);
    for (const [what, growth] of [['export', result.exportGrowth], ['import', result.importGrowth]] as const) {
      const detail = `${what}: ${JSON.stringify(growth)}`;
      expect(growth.samples, `${detail}: sampled at every batch of 512`).toBeGreaterThanOrEqual(31);
      // Holding the tier would take at least its ~68 MB of content; a batch takes a few MB.
      expect(growth.max, detail).toBeLessThan(32 << 20);
      // Flat: nothing accumulates per batch (a leak of one batch each would add ~30 MB).
      expect(growth.secondHalfMax, detail).toBeLessThan(growth.firstHalfMax + (6 << 20));
    }
    expect(result.wasmAfter, "parquet-wasm's memory (its peak: it never shrinks)").toBeLessThan(48 << 20);
  });
});
