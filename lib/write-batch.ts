// The write batch NativeStore.putMany takes: records validated into columns,
// their strings copied out as UTF-16 in the same pass. V8 copies a string out
// as UTF-16 several times faster than it encodes UTF-8 (0.6 against 2.3 us
// for a 1,000-character two-byte string here), so the native layer converts
// them, refusing lone surrogates and checking the content's UTF-8 length.
import { constants as bufferConstants } from 'node:buffer';

import { fail, TierStoreError } from './errors.js';
import type { MemoryInput } from './types.js';
import {
  checkId,
  checkTimestamp,
  checkEmbeddingType,
  checkUnit,
  describe,
  encodeMetadata,
  findNonFinite,
  finishEmbedding,
  nonFiniteMessage,
} from './validate.js';

const DEFAULT_CONFIDENCE = 0.5;
/** The native layer's message for the same (NativeStore::PutMany). */
const CONTENT_SURROGATE = 'memory.content contains a lone UTF-16 surrogate, which UTF-8 cannot encode';

/**
 * A growable byte buffer the strings of a batch are copied into as UTF-16LE,
 * back to back. Growth copies what was written; it projects the batch's
 * total from the records so far, so a batch grows only a few times.
 */
export class Utf16Sink {
  bytes: Buffer;
  /** Bytes written (always even). */
  length = 0;
  #records = 0;
  readonly #expectedRecords: number;

  constructor(capacity: number, expectedRecords: number) {
    this.bytes = Buffer.allocUnsafeSlow(capacity);
    this.#expectedRecords = expectedRecords;
  }

  /** Starts over (the bytes are kept). */
  reset(): void {
    this.length = 0;
    this.#records = 0;
  }

  endRecord(): void {
    this.#records++;
  }

  /** Appends `s` as is (lone surrogates included: the native layer refuses them); returns its UTF-16 length. */
  write(s: string): number {
    const units = s.length;
    if (units === 0) return 0;
    if (this.length + 2 * units > this.bytes.length) this.#grow(this.length + 2 * units);
    this.bytes.write(s, this.length, 'utf16le');
    this.length += 2 * units;
    return units;
  }

  #grow(need: number): void {
    if (need > bufferConstants.MAX_LENGTH) {
      fail('INVALID_ARGUMENT',
        `the strings of this write exceed ${bufferConstants.MAX_LENGTH} bytes as UTF-16, the largest Buffer; split the batch into smaller batches`);
    }
    const done = Math.max(this.#records, 1);
    const projected = (this.length / done) * Math.max(this.#expectedRecords, done) * 1.25;
    const capacity = Math.min(bufferConstants.MAX_LENGTH, Math.ceil(Math.max(need, 2 * this.bytes.length, projected)));
    const grown = Buffer.allocUnsafeSlow(capacity);
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
  }
}

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
    fail('INVALID_ARGUMENT', `memory must be an object with id, content and embedding, got ${describe(memory)}`);
  }
  const { id, content, embedding, confidence, activation, createdAt, metadata } = memory as MemoryInput;
  // DESIGN: a wrong type is INVALID_ARGUMENT before any length check. Every
  // check that can only fail with INVALID_ARGUMENT comes first, so a wrong
  // type in one field wins over CONTENT_TOO_LARGE or DIMENSION_MISMATCH in
  // another.
  checkId(id, 'memory.id');
  if (typeof content !== 'string') fail('INVALID_ARGUMENT', `memory.content must be a string, got ${describe(content)}`);
  if (embedding === undefined) {
    fail('INVALID_ARGUMENT', 'memory.embedding is missing: a Float32Array, a Float64Array or an array of numbers');
  }
  const values = checkEmbeddingType(embedding, 'memory.embedding', dims, cols.embeddings, i * dims);
  const conf = confidence === undefined ? DEFAULT_CONFIDENCE : checkUnit(confidence, 'memory.confidence');
  const act = activation === undefined ? conf : checkUnit(activation, 'memory.activation');
  const created = createdAt === undefined ? now : checkTimestamp(createdAt, 'memory.createdAt');
  const meta = encodeMetadata(metadata, 'memory.metadata');
  // Then the lengths.
  // UTF-8 takes at least one byte per UTF-16 unit: refuse without copying when clearly too large.
  if (content.length > maxContent) {
    if (!content.isWellFormed()) {
      fail('INVALID_ARGUMENT', CONTENT_SURROGATE);
    }
    fail('CONTENT_TOO_LARGE', `memory.content is more than ${maxContent} UTF-8 bytes (maxContentBytes)`);
  }
  try {
    finishEmbedding(embedding, 'memory.embedding', dims, cols.embeddings, i * dims, values);
  } catch (error) {
    // The content's own checks come first, as when they ran here.
    throw contentError(content, maxContent) ?? error;
  }
  const k = 3 * i;
  cols.lengths[k] = sink.write(id as string);
  cols.lengths[k + 1] = sink.write(content);
  cols.lengths[k + 2] = sink.write(meta);
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
    return new TierStoreError('INVALID_ARGUMENT', CONTENT_SURROGATE);
  }
  const bytes = Buffer.byteLength(content, 'utf8');
  if (bytes > maxBytes) {
    return new TierStoreError('CONTENT_TOO_LARGE', `memory.content is ${bytes} UTF-8 bytes; maxContentBytes is ${maxBytes}`);
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
 * The error for a batch the native layer refused for a non-finite embedding
 * value: names the first such value as validation would have.
 */
export function nonFiniteError(cols: Columns, count: number, dims: number, batch: boolean): TierStoreError | undefined {
  const at = findNonFinite(cols.embeddings, 0, count * dims);
  if (at < 0) return undefined;
  const i = Math.floor(at / dims);
  const field = batch ? `memories[${i}].embedding` : 'memory.embedding';
  return new TierStoreError('INVALID_ARGUMENT', nonFiniteMessage(field, at - i * dims, cols.embeddings[at]!));
}
