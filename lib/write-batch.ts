// The write batch NativeStore.putMany takes: records validated into columns,
// their strings copied out as UTF-16 in the same pass. V8 copies a string out
// as UTF-16 several times faster than it encodes UTF-8 (0.6 against 2.3 us
// for a 1,000-character two-byte string here), so the native layer converts
// them, refusing lone surrogates and checking the content's UTF-8 length.
import { fail, TierStoreError } from './errors.js';
import { writeMetadata } from './metadata-json.js';
import type { MemoryInput } from './types.js';
import { Utf16Sink } from './utf16-sink.js';
import {
  checkId,
  checkTimestamp,
  checkEmbeddingType,
  checkUnit,
  describe,
  findNonFinite,
  finishEmbedding,
  nonFiniteMessage,
} from './validate.js';

export { Utf16Sink };

const DEFAULT_CONFIDENCE = 0.5;
/** The native layer's message for the same (NativeStore::PutMany). */
const CONTENT_SURROGATE = 'memory.content contains a lone UTF-16 surrogate, which UTF-8 cannot encode';

/** The columns of a write batch, in the layout NativeStore.putMany takes. */
export class Columns {
  /** UTF-16 lengths of id, content and metadata JSON, 3 per record. */
  readonly lengths: Uint32Array;
  readonly embeddings: Float32Array;
  /** confidence, activation, createdAt, lastAccessAt: 4 per record (one array: fewer arguments to check natively). */
  readonly scalars: Float64Array;

  constructor(n: number, dims: number) {
    this.lengths = new Uint32Array(3 * n);
    this.embeddings = new Float32Array(n * dims);
    this.scalars = new Float64Array(4 * n);
  }
}

/**
 * Validates record `memory` into row i of `cols` and appends its id,
 * content and metadata JSON to `sink`. Reads each field of `memory` once.
 * Left to the native layer: embedding finiteness (it needs the same pass
 * for the norm; see nonFiniteError), and lone surrogates in the content and
 * its exact UTF-8 length (it converts the content to UTF-8). Messages name
 * fields as `memory.<field>` (putMany relabels them `memories[i].<field>`).
 * A failure leaves part of the record in `sink`: callers drop or reset it.
 */
export function prepareRecord(
  memory: unknown, cols: Columns, i: number, dims: number, maxContent: number, now: number, sink: Utf16Sink,
): void {
  if (typeof memory !== 'object' || memory === null) {
    fail('INVALID_ARGUMENT', `memory must be an object with id, content and embedding, got ${describe(memory)}`, 'memory');
  }
  const { id, content, embedding, confidence, activation, createdAt, metadata } = memory as MemoryInput;
  // DESIGN: a wrong type is INVALID_ARGUMENT before any length check. Every
  // check that can only fail with INVALID_ARGUMENT comes first, so a wrong
  // type in one field wins over CONTENT_TOO_LARGE or DIMENSION_MISMATCH in
  // another.
  checkId(id, 'memory.id');
  if (typeof content !== 'string') fail('INVALID_ARGUMENT', `memory.content must be a string, got ${describe(content)}`, 'memory.content');
  if (embedding === undefined) {
    fail('INVALID_ARGUMENT', 'memory.embedding is missing: a Float32Array, a Float64Array or an array of numbers', 'memory.embedding');
  }
  const values = checkEmbeddingType(embedding, 'memory.embedding', dims, cols.embeddings, i * dims);
  const conf = confidence === undefined ? DEFAULT_CONFIDENCE : checkUnit(confidence, 'memory.confidence');
  const act = activation === undefined ? conf : checkUnit(activation, 'memory.activation');
  const created = createdAt === undefined ? now : checkTimestamp(createdAt, 'memory.createdAt');
  // The strings go into the sink as they are checked, in the order the
  // native layer reads them: id, content, metadata (whose JSON text is
  // written as it is validated). A failure from here on leaves them there.
  const k = 3 * i;
  cols.lengths[k] = sink.write(id);
  // UTF-8 takes at least one byte per UTF-16 unit: clearly too large content is refused below, without a copy.
  const tooLarge = content.length > maxContent;
  cols.lengths[k + 1] = tooLarge ? 0 : sink.write(content);
  cols.lengths[k + 2] = writeMetadata(metadata, 'memory.metadata', sink);
  // Then the lengths.
  if (tooLarge) {
    if (!content.isWellFormed()) {
      fail('INVALID_ARGUMENT', CONTENT_SURROGATE, 'memory.content');
    }
    fail('CONTENT_TOO_LARGE', `memory.content is more than ${maxContent} UTF-8 bytes (maxContentBytes)`, 'memory.content');
  }
  try {
    finishEmbedding(embedding, 'memory.embedding', dims, cols.embeddings, i * dims, values);
  } catch (error) {
    // The content's own checks come first, as when they ran here.
    throw contentError(content, maxContent) ?? error;
  }
  sink.endRecord();

  const s = 4 * i;
  cols.scalars[s] = conf;
  cols.scalars[s + 1] = act;
  cols.scalars[s + 2] = created;
  cols.scalars[s + 3] = now;
}

/**
 * The error the native layer gives for `content` (a lone surrogate, or more
 * than maxBytes UTF-8 bytes), or undefined. Only for error paths: it scans
 * and measures the whole string.
 */
function contentError(content: string, maxBytes: number): TierStoreError | undefined {
  if (!content.isWellFormed()) {
    return new TierStoreError('INVALID_ARGUMENT', CONTENT_SURROGATE, { field: 'memory.content' });
  }
  const bytes = Buffer.byteLength(content, 'utf8');
  if (bytes > maxBytes) {
    return new TierStoreError('CONTENT_TOO_LARGE', `memory.content is ${bytes} UTF-8 bytes; maxContentBytes is ${maxBytes}`, { field: 'memory.content' });
  }
  return undefined;
}

/**
 * The first of records [0, count), already in `sink` and `cols`, whose
 * content the native layer would refuse, with that error; undefined if none.
 * putMany asks when record `count` fails validation, so that the first bad
 * record is reported, as when contents were checked record by record. The
 * contents are decoded from the sink: the records' getters are not run again.
 */
export function earlierContentError(
  sink: Utf16Sink, cols: Columns, count: number, maxBytes: number,
): { index: number; error: TierStoreError } | undefined {
  let unit = 0;
  for (let i = 0; i < count; i++) {
    const idUnits = cols.lengths[3 * i]!;
    const contentUnits = cols.lengths[3 * i + 1]!;
    const start = 2 * (unit + idUnits);
    const error = contentError(sink.bytes.toString('utf16le', start, start + 2 * contentUnits), maxBytes);
    if (error !== undefined) return { index: i, error };
    unit += idUnits + contentUnits + cols.lengths[3 * i + 2]!;
  }
  return undefined;
}

/**
 * The first of records [0, count), already in `sink` and `cols`, that the
 * native layer would refuse (its content, or a non-finite embedding value,
 * which is checked last within a record), with that error; undefined if
 * none. putMany asks when record `count` fails, in JS or natively, so that
 * the first bad record of the batch is the one reported.
 */
export function earlierRecordError(
  sink: Utf16Sink, cols: Columns, count: number, dims: number, maxBytes: number,
): { index: number; error: TierStoreError } | undefined {
  const content = earlierContentError(sink, cols, count, maxBytes);
  // A non-finite value counts only in a record before the content error's.
  const end = content === undefined ? count : content.index;
  return firstNonFinite(cols, end, dims) ?? content;
}

/**
 * The first of records [0, count) with a non-finite embedding value, with
 * its error (named `memory.embedding[j]`, as put() names it), or undefined.
 */
export function firstNonFinite(cols: Columns, count: number, dims: number): { index: number; error: TierStoreError } | undefined {
  const at = findNonFinite(cols.embeddings, 0, count * dims);
  if (at < 0) return undefined;
  const index = Math.floor(at / dims);
  const j = at - index * dims;
  const error = new TierStoreError(
    'INVALID_ARGUMENT', nonFiniteMessage('memory.embedding', j, cols.embeddings[at]!), { field: `memory.embedding[${j}]` });
  return { index, error };
}

