// The write batch NativeStore.putMany takes: records validated into columns,
// their strings encoded as UTF-8 in the same pass (each string is read and
// encoded once; counting its bytes first and checking it separately cost
// as much again).
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
} from './validate.js';

const DEFAULT_CONFIDENCE = 0.5;

/**
 * A growable byte buffer the strings of a batch are encoded into, back to
 * back. Growth copies what was written; it projects the batch's total from
 * the records so far, so a batch grows only a few times.
 */
export class Utf8Sink {
  bytes: Buffer;
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

  /** Appends `s`, known to be well-formed; returns its UTF-8 byte length. */
  writeWellFormed(s: string): number {
    if (s.length === 0) return 0;
    // A UTF-16 unit takes at most 3 UTF-8 bytes (a pair takes 4).
    let room = 3 * s.length;
    if (this.length + room > this.bytes.length) {
      if (this.length + room > bufferConstants.MAX_LENGTH) room = Buffer.byteLength(s, 'utf8');
      this.#grow(this.length + room);
    }
    const n = this.bytes.write(s, this.length, 'utf8');
    this.length += n;
    return n;
  }

  /** Appends `s`; returns its UTF-8 byte length, or -1 (appending nothing) when it holds a lone surrogate. */
  write(s: string): number {
    const start = this.length;
    const n = this.writeWellFormed(s);
    // V8 encodes a lone surrogate as U+FFFD (EF BF BD): with no 0xEF byte
    // written there was none, and the slower check is skipped.
    if (n !== 0 && this.bytes.subarray(start, start + n).indexOf(0xef) !== -1 && !s.isWellFormed()) {
      this.length = start;
      return -1;
    }
    return n;
  }

  #grow(need: number): void {
    if (need > bufferConstants.MAX_LENGTH) {
      fail('INVALID_ARGUMENT',
        `the strings of this write exceed ${bufferConstants.MAX_LENGTH} bytes, the largest Buffer; split the batch into smaller batches`);
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
  readonly lengths: Uint32Array;
  readonly embeddings: Float32Array;
  readonly confidence: Float32Array;
  readonly activation: Float32Array;
  readonly createdAt: Float64Array;
  readonly lastAccessAt: Float64Array;

  constructor(n: number, dims: number) {
    this.lengths = new Uint32Array(3 * n);
    this.embeddings = new Float32Array(n * dims);
    this.confidence = new Float32Array(n);
    this.activation = new Float32Array(n);
    this.createdAt = new Float64Array(n);
    this.lastAccessAt = new Float64Array(n);
  }
}

/**
 * Validates record `memory` into row i of `cols` and appends its id,
 * content and metadata JSON to `sink`. Reads each field of `memory` once.
 * Embedding values are checked for finiteness by the native layer (which
 * needs the same pass for the norm); see nonFiniteError. Messages name
 * fields as `memory.<field>` (putMany relabels them `memories[i].<field>`).
 * A failure leaves part of the record in `sink`: callers drop or reset it.
 */
export function prepareRecord(
  memory: unknown, cols: Columns, i: number, dims: number, maxContent: number, now: number, sink: Utf8Sink,
): void {
  if (typeof memory !== 'object' || memory === null) {
    fail('INVALID_ARGUMENT', `memory must be an object with id, content and embedding, got ${describe(memory)}`);
  }
  const { id, content, embedding, confidence, activation, createdAt, metadata } = memory as MemoryInput;
  // DESIGN: a wrong type is INVALID_ARGUMENT before any length check. Every
  // check that can only fail with INVALID_ARGUMENT comes first, so a wrong
  // type in one field wins over CONTENT_TOO_LARGE or DIMENSION_MISMATCH in
  // another.
  const idBytes = checkId(id, 'memory.id');
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
  sink.writeWellFormed(id as string);
  const contentBytes = writeContent(content, maxContent, sink);
  finishEmbedding(embedding, 'memory.embedding', dims, cols.embeddings, i * dims, values);
  const metaBytes = sink.writeWellFormed(meta);
  sink.endRecord();

  cols.confidence[i] = conf;
  cols.activation[i] = act;
  cols.createdAt[i] = created;
  cols.lastAccessAt[i] = now;
  const k = 3 * i;
  cols.lengths[k] = idBytes;
  cols.lengths[k + 1] = contentBytes;
  cols.lengths[k + 2] = metaBytes;
}

/** Content (a string): well-formed, at most maxBytes UTF-8 bytes, appended to sink. */
function writeContent(content: string, maxBytes: number, sink: Utf8Sink): number {
  const surrogate = 'memory.content contains a lone UTF-16 surrogate, which UTF-8 cannot encode';
  // UTF-8 takes at least one byte per UTF-16 unit: refuse without encoding when clearly too large
  if (content.length > maxBytes) {
    if (!content.isWellFormed()) fail('INVALID_ARGUMENT', surrogate);
    fail('CONTENT_TOO_LARGE', `memory.content is more than ${maxBytes} UTF-8 bytes (maxContentBytes)`);
  }
  const bytes = sink.write(content);
  if (bytes < 0) fail('INVALID_ARGUMENT', surrogate);
  if (bytes > maxBytes) {
    fail('CONTENT_TOO_LARGE', `memory.content is ${bytes} UTF-8 bytes; maxContentBytes is ${maxBytes}`);
  }
  return bytes;
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
  return new TierStoreError(
    'INVALID_ARGUMENT',
    `${field}[${at - i * dims}] is ${cols.embeddings[at]} as float32; embedding values must be finite after conversion to float32`,
  );
}
