// Arrow IPC through apache-arrow: the file format (.arrow/.feather/.ipc,
// "Feather v2", random access through its footer) or the stream format
// (.arrows). Writing collects the bytes apache-arrow's writer produces for
// each batch and hands them to the output before the next batch is built.
// Reading opens a file-format file through a file handle (the footer first,
// then one batch at a time) and a stream-format file as a byte stream; both
// keep one batch in memory.
import fs from 'node:fs';

import type * as arrow from 'apache-arrow';

import { TierStoreError } from '../errors.js';
import { arrowLib } from './schema.js';

/** apache-arrow, as every part of the package loads it (see arrowLib). */
const A = arrowLib();

export type ArrowIpcFormat = 'file' | 'stream';

/** A sink for apache-arrow's writer that keeps the chunks written since the last take(). */
class ChunkCollector extends A.AsyncByteQueue {
  #chunks: Uint8Array[] = [];

  override write(value: unknown): void {
    // apache-arrow's writer passes Uint8Array views of its buffers.
    const bytes = value as Uint8Array;
    if (bytes instanceof Uint8Array && bytes.byteLength > 0) this.#chunks.push(bytes);
  }

  take(): Uint8Array[] {
    const chunks = this.#chunks;
    this.#chunks = [];
    return chunks;
  }
}

/** Writes `next()`'s batches (undefined = end) as Arrow IPC, passing the bytes to `write` batch by batch. */
export async function writeArrowIpc(
  schema: arrow.Schema,
  next: () => arrow.RecordBatch | undefined,
  write: (chunk: Uint8Array) => Promise<void>,
  format: ArrowIpcFormat,
): Promise<void> {
  const collector = new ChunkCollector();
  const writer = format === 'file' ? new A.RecordBatchFileWriter() : new A.RecordBatchStreamWriter();
  writer.reset(collector as never, schema);
  const flush = async (): Promise<void> => {
    for (const chunk of collector.take()) await write(chunk);
  };
  await flush();
  for (let batch = next(); batch !== undefined; batch = next()) {
    writer.write(batch);
    await flush();
  }
  writer.close(); // writes the footer (file format) or the end-of-stream marker
  await flush();
}

const FILE_MAGIC = Buffer.from('ARROW1');

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A stream-format file must end with the end-of-stream marker (0xFFFFFFFF
 * then a zero length), which every writer since Arrow 0.15 writes when it
 * closes the stream. Without it, a stream cut exactly between two messages
 * read as a complete, shorter one (found by an audit). (The older marker, a
 * zero length alone, cannot be told from a batch's zero padding.)
 */
async function checkEndOfStream(handle: fs.promises.FileHandle, file: string): Promise<void> {
  const { size } = await handle.stat();
  const tail = Buffer.alloc(8);
  const { bytesRead } = await handle.read(tail, 0, Math.min(8, size), Math.max(0, size - 8));
  if (bytesRead !== 8 || tail.readUInt32LE(0) !== 0xffffffff || tail.readUInt32LE(4) !== 0) {
    throw new Error('the stream does not end with its end-of-stream marker: it is truncated');
  }
}

/** An open Arrow IPC file (either format): its schema and its batches. */
export class ArrowSource {
  private constructor(
    readonly file: string,
    readonly schema: arrow.Schema,
    private readonly reader: arrow.AsyncRecordBatchFileReader | arrow.AsyncRecordBatchStreamReader,
    private readonly handle: fs.promises.FileHandle | undefined,
    private readonly stream: fs.ReadStream | undefined,
  ) {}

  static async open(file: string): Promise<ArrowSource> {
    let handle: fs.promises.FileHandle | undefined;
    let stream: fs.ReadStream | undefined;
    try {
      handle = await fs.promises.open(file, 'r');
    } catch (error) {
      throw new TierStoreError('IO_ERROR', `import: cannot read ${file}: ${messageOf(error)}`, { cause: error });
    }
    try {
      const head = Buffer.alloc(FILE_MAGIC.length);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      let reader: arrow.AsyncRecordBatchFileReader | arrow.AsyncRecordBatchStreamReader;
      if (bytesRead === FILE_MAGIC.length && head.equals(FILE_MAGIC)) {
        reader = (await A.RecordBatchReader.from(handle as never)) as unknown as arrow.AsyncRecordBatchFileReader;
      } else {
        await checkEndOfStream(handle, file);
        await handle.close();
        handle = undefined;
        stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
        reader = (await A.RecordBatchReader.from(stream as never)) as unknown as arrow.AsyncRecordBatchStreamReader;
      }
      await reader.open();
      const schema = reader.schema as arrow.Schema | undefined | null;
      if (schema === undefined || schema === null || schema.fields.length === 0) {
        throw new Error('no Arrow schema at the start of the file');
      }
      return new ArrowSource(file, schema, reader, handle, stream);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      stream?.destroy();
      throw new TierStoreError('CORRUPTION', `import: ${file} is not a readable Arrow IPC file: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  /** The file's batches, each sliced to at most `batchSize` rows. */
  async *batches(batchSize: number): AsyncGenerator<arrow.RecordBatch> {
    const iterator = this.reader[Symbol.asyncIterator]();
    for (;;) {
      let result: IteratorResult<arrow.RecordBatch>;
      try {
        result = await iterator.next();
      } catch (error) {
        throw new TierStoreError('CORRUPTION', `import: ${this.file} is damaged: ${messageOf(error)}`, { cause: error });
      }
      if (result.done) return;
      const batch = result.value;
      for (let start = 0; start < batch.numRows; start += batchSize) {
        yield batch.numRows <= batchSize ? batch : batch.slice(start, Math.min(batch.numRows, start + batchSize));
      }
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.stream?.destroy();
  }
}
