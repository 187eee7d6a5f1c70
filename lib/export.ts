/**
 * Export and import of a store (issue 8): a tier, or all of them, written as
 * Apache Parquet, Arrow IPC or JSONL, and read back.
 *
 * Guarantees:
 * - Streaming: export reads the store batch by batch (store.iterate
 *   ...batches()) and writes each batch before reading the next, waiting for
 *   the output's backpressure; import reads a file batch by batch (Parquet row
 *   groups, Arrow record batches, JSONL lines) and writes each with one
 *   putMany. Memory is bounded by the batch size, never by the tier or file.
 * - Fidelity: every field of a Memory is in the file (schema in
 *   lib/export/columns.ts); import restores id, content, metadata, confidence,
 *   activation, createdAt, the embedding (bit-exact) and, with keepTiers, the
 *   tier. lastAccessAt and accessCount are exported but restart on import
 *   (they are access statistics, which put() does not take).
 * - Failure: an export to a path goes to a temporary file renamed into place
 *   at the end, so a failed export leaves no file. An import writes batch by
 *   batch, each batch atomically: after an error the batches before it are
 *   imported and the error says how many records that was. A file that cannot
 *   be decoded (bad magic or footer, truncated, invalid UTF-8, a JSONL line
 *   that is not JSON) is CORRUPTION; a decodable record the store rejects is
 *   that store error (INVALID_ARGUMENT, DIMENSION_MISMATCH, ...) naming the
 *   row (or line) and the id; a missing or unreadable file is IO_ERROR.
 */
import fs from 'node:fs';

import type * as arrow from 'apache-arrow';

import { TierStoreError } from './errors.js';
import { ArrowSource, writeArrowIpc, type ArrowIpcFormat } from './export/arrow-ipc.js';
import {
  byteRanges,
  checkImportSchema,
  exportSchema,
  prepareBatch,
  rowsOf,
  schemaMetadata,
  toArrowBatch,
  type RowBatch,
} from './export/columns.js';
import { jsonlBatches, jsonlLines } from './export/jsonl.js';
import { ByteOutput } from './export/output.js';
import { ParquetSource, writeParquet, type ParquetCompression } from './export/parquet.js';
import { PlainWriter, TierWriter, type BatchWriter } from './export/placement.js';
import type { MemoryStore } from './store.js';
import type { MemoryBatch, TierSelector } from './types.js';
import { checkBoolean, checkInteger, checkOptions, describe, MAX_BATCH_SIZE, tierIndex } from './validate.js';

export type { ArrowIpcFormat } from './export/arrow-ipc.js';
export type { ParquetCompression } from './export/parquet.js';

export type ExportFormat = 'jsonl' | 'parquet' | 'arrow';

export interface ExportOptions {
  format: ExportFormat;
  /** Default 'all' (hot, then warm, then cold). */
  tier?: TierSelector;
  /** Records per batch / Parquet row group: integer 1..65536, default 4096. */
  batchSize?: number;
  /** Called after each batch; total = records in the selected tier(s) at the start. */
  onProgress?: (done: number, total: number) => void;
  /** Arrow only: 'file' (default; Feather v2) or 'stream' (default when the path ends in .arrows). */
  arrowFormat?: ArrowIpcFormat;
  /** Parquet only: default 'snappy'. */
  compression?: ParquetCompression;
  /** When `output` is a stream: end it when done (default true, except process.stdout/stderr, like pipe()). */
  end?: boolean;
}

export interface ImportOptions {
  /** Default: from the extension (.jsonl/.ndjson, .parquet, .arrow/.arrows/.ipc/.feather). */
  format?: ExportFormat;
  /** Records per putMany: integer 1..65536, default 4096. */
  batchSize?: number;
  /** Default true: records return to the tier they were exported from (the file's tier column). */
  keepTiers?: boolean;
  /** Called after each batch; total = the file's row count when the format tells it (Parquet). */
  onProgress?: (done: number, total?: number) => void;
}

const FORMATS: readonly ExportFormat[] = ['jsonl', 'parquet', 'arrow'];
const DEFAULT_BATCH_SIZE = 4096;
/** Strings per Arrow batch / JSONL write: large contents make smaller batches. */
const MAX_CHUNK_BYTES = 64 << 20;
/** Columns an import reads (access statistics are not restored). */
const IMPORTED_COLUMNS = ['id', 'content', 'metadata', 'confidence', 'activation', 'createdAt', 'tier', 'embedding'];

/** The format a file name implies, from its extension (case-insensitive). */
export function formatFromPath(file: string): ExportFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.parquet')) return 'parquet';
  if (/\.(arrow|arrows|ipc|feather)$/.test(lower)) return 'arrow';
  return undefined;
}

function checkFormat(value: unknown, field: string): ExportFormat {
  if (typeof value === 'string' && (FORMATS as readonly string[]).includes(value)) return value as ExportFormat;
  throw new TierStoreError('INVALID_ARGUMENT', `${field} must be 'jsonl', 'parquet' or 'arrow', got ${describe(value)}`);
}

function checkCallback<T>(value: unknown, field: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TierStoreError('INVALID_ARGUMENT', `${field} must be a function, got ${describe(value)}`);
  return value as T;
}

function checkChoice<T extends string>(value: unknown, field: string, choices: readonly T[], dflt: T): T {
  if (value === undefined) return dflt;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new TierStoreError(
    'INVALID_ARGUMENT',
    `${field} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got ${describe(value)}`,
  );
}

function emptyBatch(): MemoryBatch {
  return {
    tiers: [],
    ids: [],
    contents: [],
    metadata: [],
    confidence: new Float32Array(0),
    activation: new Float32Array(0),
    createdAt: new Float64Array(0),
    lastAccessAt: new Float64Array(0),
    accessCount: new Float64Array(0),
    embeddings: new Float32Array(0),
  };
}

/**
 * Writes the records of `options.tier` (default all) to `output` (a file path,
 * replaced when the export succeeds, or a writable stream) in `options.format`.
 * Resolves with the records and bytes written.
 */
export async function exportStore(
  store: MemoryStore,
  output: string | NodeJS.WritableStream,
  options: ExportOptions,
): Promise<{ records: number; bytes: number }> {
  const opts = checkOptions(options, 'exportStore()');
  if (opts === undefined) {
    throw new TierStoreError('INVALID_ARGUMENT', "exportStore(): options with a format ('jsonl', 'parquet' or 'arrow') are required");
  }
  const format = checkFormat(opts.format, 'exportStore(): options.format');
  const tier = (opts.tier ?? 'all') as TierSelector;
  tierIndex(tier, 'exportStore(): options.tier', true);
  const batchSize = checkInteger(opts.batchSize, 'exportStore(): options.batchSize', 1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE);
  const onProgress = checkCallback<ExportOptions['onProgress']>(opts.onProgress, 'exportStore(): options.onProgress');
  const defaultArrowFormat = typeof output === 'string' && output.toLowerCase().endsWith('.arrows') ? 'stream' : 'file';
  const arrowFormat = checkChoice(opts.arrowFormat, 'exportStore(): options.arrowFormat', ['file', 'stream'], defaultArrowFormat);
  const compression = checkChoice(opts.compression, 'exportStore(): options.compression', ['snappy', 'zstd', 'uncompressed'], 'snappy');
  const end = checkBoolean(opts.end, 'exportStore(): options.end', true);
  if (typeof output !== 'string' && (output === null || typeof output !== 'object')) {
    throw new TierStoreError('INVALID_ARGUMENT', `exportStore(): output must be a file path or a writable stream, got ${describe(output)}`);
  }
  if (typeof output === 'string' && output.length === 0) {
    throw new TierStoreError('INVALID_ARGUMENT', 'exportStore(): output must be a non-empty file path');
  }

  const counts = store.counts(); // STORE_CLOSED before any file is created
  const total = tier === 'all' ? counts.total : counts[tier];
  const dims = store.dimensions;
  const out = await ByteOutput.open(output, end);
  const write = (chunk: Uint8Array): Promise<void> => out.write(chunk);
  let records = 0;
  try {
    if (format === 'jsonl') {
      const storeBatches = store.iterate({ tier, includeEmbeddings: true, batchSize }).batches()[Symbol.iterator]();
      try {
        for (let step = storeBatches.next(); step.done !== true; step = storeBatches.next()) {
          const batch = step.value;
          const prepared = prepareBatch(batch);
          for (const [start, stop] of byteRanges(prepared, MAX_CHUNK_BYTES)) {
            await write(Buffer.from(jsonlLines(prepared, start, stop, dims), 'utf8'));
          }
          records += batch.ids.length;
          onProgress?.(records, total);
        }
      } finally {
        storeBatches.return?.();
      }
    } else {
      const schema = exportSchema(dims, tier);
      // The store's own Arrow scan: column buffers the engine fills, at most
      // 256 MiB of strings a batch.
      const scan = store.iterate({ tier, includeEmbeddings: true, batchSize }).arrow()[Symbol.iterator]();
      // Parquet takes its schema from the first batch: an empty export gives it an empty one.
      let needsBatch = format === 'parquet';
      const next = (): arrow.RecordBatch | undefined => {
        const step = scan.next();
        if (step.done === true) {
          if (!needsBatch) return undefined;
          needsBatch = false;
          return toArrowBatch(schema, prepareBatch(emptyBatch()), 0, 0);
        }
        needsBatch = false;
        records += step.value.numRows;
        onProgress?.(records, total);
        return step.value;
      };
      try {
        if (format === 'arrow') {
          await writeArrowIpc(schema, next, write, arrowFormat);
        } else {
          await writeParquet(next, write, {
            rowGroupSize: batchSize,
            compression,
            keyValueMetadata: schemaMetadata(dims, tier),
          });
        }
      } finally {
        scan.return?.();
      }
    }
    await out.finish();
  } catch (error) {
    await out.abort();
    throw error;
  }
  return { records, bytes: out.bytes };
}

/** A source of record batches from a file, opened and checked before anything is written. */
interface RowSource {
  total: number | undefined;
  /** 'row' (columnar files) or 'line' (JSONL), for messages. */
  label: 'row' | 'line';
  batches: AsyncIterable<RowBatch>;
  close(): Promise<void> | void;
}

async function* rowBatchesOf(
  batches: AsyncIterable<arrow.RecordBatch>,
  dims: number,
  file: string,
): AsyncGenerator<RowBatch> {
  let row = 1;
  for await (const batch of batches) {
    if (batch.numRows === 0) continue;
    yield rowsOf(batch, dims, file, row);
    row += batch.numRows;
  }
}

async function openSource(format: ExportFormat, file: string, dims: number, batchSize: number): Promise<RowSource> {
  switch (format) {
    case 'parquet': {
      const source = await ParquetSource.open(file);
      try {
        checkImportSchema(source.schema, dims, file);
      } catch (error) {
        source.close();
        throw error;
      }
      const columns = source.schema.fields.map((f) => f.name).filter((name) => IMPORTED_COLUMNS.includes(name));
      return {
        total: source.rows,
        label: 'row',
        batches: rowBatchesOf(source.batches(batchSize, columns), dims, file),
        close: () => source.close(),
      };
    }
    case 'arrow': {
      const source = await ArrowSource.open(file);
      try {
        checkImportSchema(source.schema, dims, file);
      } catch (error) {
        await source.close();
        throw error;
      }
      return {
        total: undefined,
        label: 'row',
        batches: rowBatchesOf(source.batches(batchSize), dims, file),
        close: () => source.close(),
      };
    }
    case 'jsonl':
      return { total: undefined, label: 'line', batches: jsonlBatches(file, batchSize, MAX_CHUNK_BYTES), close: () => {} };
  }
}

/** A store error about record i of a putMany, retold with the file's row (or line) and id. */
function rowError(error: unknown, rows: RowBatch, file: string, label: string): unknown {
  if (!(error instanceof TierStoreError)) return error;
  const match = /^memories\[(\d+)\]\.?/.exec(error.message);
  if (match === null) return error;
  const i = Number(match[1]);
  const id = (rows.inputs[i] as { id?: unknown } | undefined)?.id;
  const rest = error.message.slice(match[0].length);
  const what = rest.startsWith(' ') ? `the record${rest}` : rest;
  return new TierStoreError(
    error.code,
    `import: ${file}, ${label} ${rows.positions[i]} (id ${typeof id === 'string' ? JSON.stringify(id) : describe(id)}): ${what}`,
    { cause: error },
  );
}

function withProgress(error: unknown, done: number): unknown {
  if (!(error instanceof TierStoreError)) return error;
  const note =
    done === 0
      ? 'nothing was imported'
      : `the ${done} records of the batches before it were imported (importing the fixed file again is safe: puts replace records with the same id)`;
  return new TierStoreError(error.code, `${error.message}; ${note}`, { cause: error });
}

/**
 * Reads `input` (Parquet, Arrow IPC or JSONL; the format from its extension
 * unless `options.format` says) into `store`, batch by batch. With keepTiers
 * (default) every record ends in the tier of its `tier` column, and the import
 * triggers no capacity migration: the store's capacities apply again at the
 * next write or migrate(). Resolves with the number of records read.
 */
export async function importFile(store: MemoryStore, input: string, options?: ImportOptions): Promise<{ records: number }> {
  const opts = checkOptions(options, 'importFile()') ?? {};
  if (typeof input !== 'string' || input.length === 0) {
    throw new TierStoreError('INVALID_ARGUMENT', `importFile(): input must be a file path, got ${describe(input)}`);
  }
  const format =
    opts.format !== undefined ? checkFormat(opts.format, 'importFile(): options.format') : formatFromPath(input);
  if (format === undefined) {
    throw new TierStoreError(
      'INVALID_ARGUMENT',
      `importFile(): cannot tell the format of ${input} from its extension (.jsonl/.ndjson, .parquet, .arrow/.arrows/.ipc/.feather); pass options.format: 'jsonl', 'parquet' or 'arrow'`,
    );
  }
  const batchSize = checkInteger(opts.batchSize, 'importFile(): options.batchSize', 1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE);
  const keepTiers = checkBoolean(opts.keepTiers, 'importFile(): options.keepTiers', true);
  const onProgress = checkCallback<ImportOptions['onProgress']>(opts.onProgress, 'importFile(): options.onProgress');

  store.counts(); // STORE_CLOSED first
  if (store.readOnly) throw new TierStoreError('READ_ONLY', 'importFile(): the store was opened with readOnly: true');
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(input);
  } catch (error) {
    throw new TierStoreError('IO_ERROR', `importFile(): cannot read ${input}: ${(error as Error).message}`, { cause: error });
  }
  if (!stat.isFile()) throw new TierStoreError('IO_ERROR', `importFile(): ${input} is not a file`);

  let source: RowSource | undefined;
  let done = 0;
  let writer: BatchWriter | undefined;
  let failure: { error: unknown } | undefined;
  try {
    source = await openSource(format, input, store.dimensions, batchSize);
    writer = keepTiers ? new TierWriter(store, input, source.label) : new PlainWriter(store);
    for await (const rows of source.batches) {
      try {
        writer.put(rows.inputs, rows.tiers, rows.positions);
      } catch (error) {
        throw rowError(error, rows, input, source.label);
      }
      done += rows.inputs.length;
      onProgress?.(done, source.total);
    }
  } catch (error) {
    failure = { error: withProgress(error, done) };
  } finally {
    try {
      writer?.finish();
      await source?.close();
      if (failure === undefined) store.flush();
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure !== undefined) throw failure.error;
  return { records: done };
}
