// Conversions between store batches and Arrow record batches (both
// directions), in the schema of lib/export/schema.ts. Used by the Arrow IPC
// and the Parquet formats alike (Parquet goes through Arrow).
//
// Import accepts that schema and reasonable variants written by other tools
// (Spark, DuckDB, pandas): only id, content and embedding are required;
// strings may be utf8/large_utf8/dictionary, the embedding a fixed-size or
// variable list of float32/float64, numbers any int/float, timestamps any unit.
import type * as arrow from 'apache-arrow';

import { TierStoreError } from '../errors.js';
import type { MemoryBatch, MemoryInput } from '../types.js';

import { arrowLib, DIMENSIONS_KEY } from './schema.js';

/** apache-arrow, as every part of the package loads it (see arrowLib). */
const A = arrowLib();

export { COLUMN_NAMES, DIMENSIONS_KEY, exportSchema, FORMAT_KEY, FORMAT_VALUE, schemaMetadata, TIER_KEY } from './schema.js';

/** Strings are decoded strictly (invalid UTF-8 is corruption) and keep a leading U+FEFF. */
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------
// Store batch -> Arrow

/** A store batch with each record's metadata as JSON text and its string bytes. */
export interface PreparedBatch {
  batch: MemoryBatch;
  metadataTexts: string[];
  /** UTF-8 bytes of id + content + metadata of each record. */
  stringBytes: Float64Array;
}

export function prepareBatch(batch: MemoryBatch): PreparedBatch {
  const n = batch.ids.length;
  const metadataTexts = new Array<string>(n);
  const stringBytes = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const text = JSON.stringify(batch.metadata[i]);
    metadataTexts[i] = text;
    stringBytes[i] =
      Buffer.byteLength(batch.ids[i]!, 'utf8') + Buffer.byteLength(batch.contents[i]!, 'utf8') + Buffer.byteLength(text, 'utf8');
  }
  return { batch, metadataTexts, stringBytes };
}

/**
 * Splits [0, n) into ranges of at most `maxBytes` string bytes (at least one
 * record each), so one Arrow batch stays far from the 2 GiB limit of utf8
 * offsets and memory stays bounded when contents are large.
 */
export function byteRanges(prepared: PreparedBatch, maxBytes: number): Array<[number, number]> {
  const n = prepared.batch.ids.length;
  const ranges: Array<[number, number]> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const b = prepared.stringBytes[i]!;
    if (i > start && bytes + b > maxBytes) {
      ranges.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += b;
  }
  if (n > start) ranges.push([start, n]);
  return ranges;
}

function utf8Data(values: readonly string[], start: number, end: number): arrow.Data<arrow.Utf8> {
  const n = end - start;
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += Buffer.byteLength(values[start + i]!, 'utf8');
    offsets[i + 1] = total;
  }
  const bytes = Buffer.allocUnsafeSlow(total);
  let position = 0;
  for (let i = 0; i < n; i++) position += bytes.write(values[start + i]!, position, 'utf8');
  return A.makeData({ type: new A.Utf8(), length: n, nullCount: 0, valueOffsets: offsets, data: bytes });
}

function float32Data(values: Float32Array, start: number, end: number): arrow.Data<arrow.Float32> {
  return A.makeData({ type: new A.Float32(), length: end - start, nullCount: 0, data: values.slice(start, end) });
}

function int64Values(values: Float64Array, start: number, end: number): BigInt64Array {
  const out = new BigInt64Array(end - start);
  // Store times and counts are integers; rounding only guards the conversion.
  for (let i = start; i < end; i++) out[i - start] = BigInt(Math.round(values[i]!));
  return out;
}

/** Records [start, end) of a prepared store batch as an Arrow record batch of `schema`. */
export function toArrowBatch(schema: arrow.Schema, prepared: PreparedBatch, start: number, end: number): arrow.RecordBatch {
  const { batch, metadataTexts } = prepared;
  const n = end - start;
  const embeddingType = schema.fields[9]!.type as arrow.FixedSizeList<arrow.Float32>;
  const dims = embeddingType.listSize;
  const embeddings = batch.embeddings;
  if (embeddings === undefined || embeddings.length !== batch.ids.length * dims) {
    throw new Error('export: the store batch came without embeddings of the expected size');
  }
  const item = A.makeData({
    type: new A.Float32(),
    length: n * dims,
    nullCount: 0,
    data: embeddings.slice(start * dims, end * dims),
  });
  const children: arrow.Data[] = [
    utf8Data(batch.ids, start, end),
    utf8Data(batch.contents, start, end),
    utf8Data(metadataTexts, start, end),
    float32Data(batch.confidence, start, end),
    float32Data(batch.activation, start, end),
    A.makeData({ type: schema.fields[5]!.type as arrow.TimestampMillisecond, length: n, nullCount: 0, data: int64Values(batch.createdAt, start, end) }),
    A.makeData({ type: schema.fields[6]!.type as arrow.TimestampMillisecond, length: n, nullCount: 0, data: int64Values(batch.lastAccessAt, start, end) }),
    A.makeData({ type: new A.Int64(), length: n, nullCount: 0, data: int64Values(batch.accessCount, start, end) }),
    utf8Data(batch.tiers, start, end),
    A.makeData({ type: embeddingType, length: n, nullCount: 0, child: item }),
  ];
  const struct = A.makeData({ type: new A.Struct(schema.fields), length: n, nullCount: 0, children });
  return new A.RecordBatch(schema, struct);
}

// ---------------------------------------------------------------------------
// Arrow -> store inputs

/** Records read from a file, ready for putMany, with where each came from. */
export interface RowBatch {
  inputs: MemoryInput[];
  /** The tier column's value of each record (undefined without a tier column). */
  tiers: Array<string | undefined>;
  /** 1-based row (columnar files) or line (JSONL) number of each record. */
  positions: number[];
}

/** Checks the columns an import needs, before anything is written. */
export function checkImportSchema(schema: arrow.Schema, dimensions: number, file: string): void {
  const declared = schema.metadata.get(DIMENSIONS_KEY);
  if (declared !== undefined && Number(declared) !== dimensions) {
    throw new TierStoreError(
      'DIMENSION_MISMATCH',
      `import: ${file} holds ${declared}-dimensional embeddings (${DIMENSIONS_KEY} in its schema); the store has ${dimensions}`,
    );
  }
  const names = schema.fields.map((f) => f.name);
  for (const required of ['id', 'content', 'embedding']) {
    if (!names.includes(required)) {
      throw new TierStoreError(
        'INVALID_ARGUMENT',
        `import: ${file} has no column '${required}' (it has: ${names.join(', ') || 'no columns'}); id, content and embedding are required`,
      );
    }
  }
  const embedding = schema.fields.find((f) => f.name === 'embedding')!.type;
  if (A.DataType.isFixedSizeList(embedding)) {
    if (embedding.listSize !== dimensions) {
      throw new TierStoreError(
        'DIMENSION_MISMATCH',
        `import: ${file} holds embeddings of ${embedding.listSize} values (column embedding is ${String(embedding)}); the store has ${dimensions} dimensions`,
      );
    }
  } else if (!A.DataType.isList(embedding)) {
    throw new TierStoreError(
      'INVALID_ARGUMENT',
      `import: column embedding of ${file} must be a list of float32 or float64 values, got ${String(embedding)}`,
    );
  }
  const item = (embedding as arrow.List | arrow.FixedSizeList).children[0]!.type;
  if (!A.DataType.isFloat(item) && !A.DataType.isInt(item)) {
    throw new TierStoreError(
      'INVALID_ARGUMENT',
      `import: column embedding of ${file} must be a list of float32 or float64 values, got ${String(embedding)}`,
    );
  }
}

type Reader<T> = (i: number) => T;

function corrupt(file: string, column: string, row: number, error: unknown): TierStoreError {
  return new TierStoreError(
    'CORRUPTION',
    `import: ${file}, row ${row}: column ${column} is not valid UTF-8 (${String((error as Error)?.message ?? error)})`,
    { cause: error },
  );
}

function stringReader(vector: arrow.Vector, column: string, file: string, firstRow: number): Reader<unknown> {
  const data = vector.data[0]!;
  const type = data.type as arrow.DataType;
  if (A.DataType.isUtf8(type) || A.DataType.isLargeUtf8(type)) {
    const offsets = data.valueOffsets as Int32Array | BigInt64Array;
    const values = data.values as Uint8Array;
    const hasNulls = data.nullCount > 0;
    return (i) => {
      if (hasNulls && !data.getValid(i)) return null;
      try {
        return utf8Decoder.decode(values.subarray(Number(offsets[i]), Number(offsets[i + 1])));
      } catch (error) {
        throw corrupt(file, column, firstRow + i, error);
      }
    };
  }
  // Dictionary-encoded or other string-like columns: arrow's own accessor.
  return (i) => vector.get(i);
}

const TIME_UNIT_TO_MS: Record<number, number> = {
  [A.TimeUnit.SECOND]: 1000,
  [A.TimeUnit.MILLISECOND]: 1,
  [A.TimeUnit.MICROSECOND]: 1e-3,
  [A.TimeUnit.NANOSECOND]: 1e-6,
};

/** A number column (float, int, timestamp as milliseconds); null -> undefined (the default). */
function numberReader(vector: arrow.Vector): Reader<unknown> {
  const data = vector.data[0]!;
  const type = data.type as arrow.DataType;
  const hasNulls = data.nullCount > 0;
  const values = data.values as ArrayLike<number | bigint> | undefined;
  if (A.DataType.isTimestamp(type) && values instanceof BigInt64Array) {
    const scale = TIME_UNIT_TO_MS[type.unit]!;
    return (i) => {
      if (hasNulls && !data.getValid(i)) return undefined;
      const v = values[i]!;
      // Finer units are truncated to whole milliseconds (the store keeps ms).
      return scale >= 1 ? Number(v) * scale : Math.floor(Number(v) * scale);
    };
  }
  if ((A.DataType.isFloat(type) && type.precision !== A.Precision.HALF) || A.DataType.isInt(type)) {
    const vals = values!;
    return (i) => {
      if (hasNulls && !data.getValid(i)) return undefined;
      const v = vals[i]!;
      return typeof v === 'bigint' ? Number(v) : v;
    };
  }
  return (i) => {
    if (hasNulls && !data.getValid(i)) return undefined;
    const v = vector.get(i) as unknown;
    return typeof v === 'bigint' ? Number(v) : v;
  };
}

function embeddingReader(vector: arrow.Vector, dims: number): Reader<unknown> {
  const data = vector.data[0]!;
  const type = data.type as arrow.DataType;
  const child = data.children[0]!;
  const hasNulls = data.nullCount > 0;
  const values = child.values as Float32Array | Float64Array | ArrayLike<number>;
  // Null items have no value: fall back to arrow's accessor, which yields nulls the store rejects.
  if (child.nullCount > 0 || !(values instanceof Float32Array || values instanceof Float64Array)) {
    return (i) => {
      if (hasNulls && !data.getValid(i)) return null;
      const v = vector.get(i) as arrow.Vector | null;
      return v === null ? null : Array.from(v as unknown as Iterable<unknown>);
    };
  }
  if (A.DataType.isFixedSizeList(type)) {
    return (i) => (hasNulls && !data.getValid(i) ? null : values.subarray(i * dims, (i + 1) * dims));
  }
  const offsets = data.valueOffsets as Int32Array;
  return (i) => (hasNulls && !data.getValid(i) ? null : values.subarray(offsets[i]!, offsets[i + 1]!));
}

/** The records of an Arrow batch as putMany inputs. `firstRow` is the 1-based file row of its first record. */
export function rowsOf(batch: arrow.RecordBatch, dims: number, file: string, firstRow: number): RowBatch {
  const n = batch.numRows;
  const column = (name: string): arrow.Vector | undefined => batch.getChild(name) ?? undefined;
  const id = stringReader(column('id')!, 'id', file, firstRow);
  const content = stringReader(column('content')!, 'content', file, firstRow);
  const embedding = embeddingReader(column('embedding')!, dims);
  const metadataColumn = column('metadata');
  const metadata = metadataColumn && stringReader(metadataColumn, 'metadata', file, firstRow);
  const tierColumn = column('tier');
  const tier = tierColumn && stringReader(tierColumn, 'tier', file, firstRow);
  const numbers: Array<[keyof MemoryInput, Reader<unknown>]> = [];
  for (const name of ['confidence', 'activation', 'createdAt'] as const) {
    const vector = column(name);
    if (vector !== undefined) numbers.push([name, numberReader(vector)]);
  }

  const inputs = new Array<MemoryInput>(n);
  const tiers = new Array<string | undefined>(n);
  const positions = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const row = firstRow + i;
    const input = { id: id(i), content: content(i), embedding: embedding(i) } as Record<string, unknown>;
    for (const [name, read] of numbers) {
      const v = read(i);
      if (v !== undefined) input[name] = v;
    }
    if (metadata !== undefined) {
      const text = metadata(i);
      if (typeof text === 'string') {
        try {
          input.metadata = JSON.parse(text) as unknown;
        } catch (error) {
          throw new TierStoreError(
            'INVALID_ARGUMENT',
            `import: ${file}, row ${row} (id ${JSON.stringify(input.id)}): column metadata is not JSON text (${(error as Error).message})`,
          );
        }
      } else if (text !== null && text !== undefined) {
        input.metadata = text;
      }
    }
    const t = tier?.(i);
    tiers[i] = typeof t === 'string' ? t : undefined;
    inputs[i] = input as unknown as MemoryInput;
    positions[i] = row;
  }
  return { inputs, tiers, positions };
}
