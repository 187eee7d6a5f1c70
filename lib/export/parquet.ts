// Parquet through parquet-wasm (the Rust arrow/parquet crates compiled to
// WebAssembly). Writing: Arrow record batches, handed over as IPC bytes, go
// through transformParquetStream, which emits one row group at a time
// (maxRowGroupSize = the batch size), so memory stays bounded by a row group.
// Reading: a file-backed Blob (fs.openAsBlob) lets ParquetFile read only the
// footer and then one row group's column chunks at a time.
//
// The file keeps the Arrow schema in its ARROW:schema metadata (so Arrow
// readers get fixed_size_list<float32>[dims] back; Parquet-only readers such
// as DuckDB and Spark see a LIST of FLOAT) and the tierstore.* keys also as
// plain Parquet key-value metadata.
import fs from 'node:fs';

import type * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm';

import { TierStoreError } from '../errors.js';
import { arrowLib } from './schema.js';

/** apache-arrow, as every part of the package loads it (see arrowLib). */
const A = arrowLib();

export type ParquetCompression = 'snappy' | 'zstd' | 'uncompressed';

const COMPRESSION: Record<ParquetCompression, parquet.Compression> = {
  snappy: parquet.Compression.SNAPPY,
  zstd: parquet.Compression.ZSTD,
  uncompressed: parquet.Compression.UNCOMPRESSED,
};

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An Arrow JS batch as a parquet-wasm batch (through IPC bytes). */
function toWasmBatch(batch: arrow.RecordBatch): parquet.RecordBatch {
  const table = parquet.Table.fromIPCStream(A.tableToIPC(new A.Table([batch]), 'stream'));
  try {
    const wasmBatch = table.recordBatch(0);
    if (wasmBatch === undefined) throw new Error('parquet-wasm returned no record batch');
    return wasmBatch;
  } finally {
    table.free();
  }
}

/**
 * Streams `next()`'s batches (undefined = end; the first call must return a
 * batch, possibly empty, since the writer takes the schema from it) into
 * Parquet bytes, passing each chunk to `write` before asking for more.
 */
export async function writeParquet(
  next: () => arrow.RecordBatch | undefined,
  write: (chunk: Uint8Array) => Promise<void>,
  options: { rowGroupSize: number; compression: ParquetCompression; keyValueMetadata: Map<string, string> },
): Promise<void> {
  let sourceError: { error: unknown } | undefined;
  const source = new ReadableStream<parquet.RecordBatch>(
    {
      pull(controller) {
        try {
          const batch = next();
          if (batch === undefined) controller.close();
          else controller.enqueue(toWasmBatch(batch));
        } catch (error) {
          sourceError = { error };
          controller.error(error);
        }
      },
    },
    { highWaterMark: 0 },
  );
  const properties = new parquet.WriterPropertiesBuilder()
    .setCompression(COMPRESSION[options.compression])
    .setMaxRowGroupSize(options.rowGroupSize)
    // Dictionaries only where values repeat: for the other columns they cost
    // memory and time until the writer gives up on them.
    .setDictionaryEnabled(false)
    .setColumnDictionaryEnabled('tier', true)
    .setKeyValueMetadata(options.keyValueMetadata)
    .setCreatedBy('tierstore (parquet-wasm)')
    .build();
  try {
    const bytes = await parquet.transformParquetStream(source, properties);
    for await (const chunk of bytes as unknown as AsyncIterable<Uint8Array>) await write(chunk);
  } catch (error) {
    // The source's own error (e.g. the store was closed) is more useful than the wrapper's.
    if (sourceError !== undefined) throw sourceError.error;
    if (error instanceof TierStoreError) throw error;
    throw new TierStoreError('IO_ERROR', `export: the Parquet writer failed: ${messageOf(error)}`, { cause: error });
  }
  if (sourceError !== undefined) throw sourceError.error;
}

/** An open Parquet file: its Arrow schema, row count and a batch stream. */
export class ParquetSource {
  private constructor(
    readonly file: string,
    private readonly handle: parquet.ParquetFile,
    readonly schema: arrow.Schema,
    readonly rows: number,
  ) {}

  static async open(file: string): Promise<ParquetSource> {
    let handle: parquet.ParquetFile | undefined;
    try {
      const blob = await fs.promises.stat(file).then(() => fs.openAsBlob(file));
      handle = await parquet.ParquetFile.fromFile(blob);
      const metadata = handle.metadata();
      const rows = metadata.fileMetadata().numRows();
      // The footer's schema (with the ARROW:schema hint applied), as Arrow JS.
      const schemaTable = A.tableFromIPC(handle.schema().intoIPCStream());
      return new ParquetSource(file, handle, schemaTable.schema, rows);
    } catch (error) {
      handle?.free();
      if ((error as { code?: unknown })?.code !== undefined && typeof (error as { syscall?: unknown }).syscall === 'string') {
        throw new TierStoreError('IO_ERROR', `import: cannot read ${file}: ${messageOf(error)}`, { cause: error });
      }
      throw new TierStoreError('CORRUPTION', `import: ${file} is not a readable Parquet file: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  /** Arrow batches of at most `batchSize` rows, reading only `columns`. */
  async *batches(batchSize: number, columns: string[]): AsyncGenerator<arrow.RecordBatch> {
    let stream: ReadableStream<parquet.RecordBatch>;
    try {
      stream = (await this.handle.stream({ batchSize, columns })) as ReadableStream<parquet.RecordBatch>;
    } catch (error) {
      throw new TierStoreError('CORRUPTION', `import: ${this.file}: cannot read its row groups: ${messageOf(error)}`, {
        cause: error,
      });
    }
    const reader = stream.getReader();
    try {
      for (;;) {
        let result: { done: boolean; value?: parquet.RecordBatch };
        let batches: arrow.RecordBatch[];
        try {
          result = await reader.read();
          if (result.done) return;
          batches = A.tableFromIPC(result.value!.intoIPCStream()).batches;
        } catch (error) {
          throw new TierStoreError('CORRUPTION', `import: ${this.file} is damaged: ${messageOf(error)}`, { cause: error });
        }
        for (const batch of batches) yield batch;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  close(): void {
    this.handle.free();
  }
}
