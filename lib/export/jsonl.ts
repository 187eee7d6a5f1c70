// JSONL (newline-delimited JSON): one memory per line, every field of a
// Memory, metadata as a nested object and the embedding as an array of
// numbers. Floats are written with the shortest decimal that parses back to
// the same double, which for a float32 value is the float32 value exactly
// (and -0 is written as -0, which JSON.stringify would lose), so a round trip
// is bit-exact. Lines are split on bytes and decoded strictly, so invalid
// UTF-8 is reported instead of being replaced.
import fs from 'node:fs';

import { TierStoreError } from '../errors.js';
import type { PreparedBatch, RowBatch } from './columns.js';

/** A float (float32 or integer) as JSON text that parses back to the same value, sign of zero included. */
function numberText(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/** Records [start, end) of a batch as JSONL text. */
export function jsonlLines(prepared: PreparedBatch, start: number, end: number, dims: number): string {
  const { batch, metadataTexts } = prepared;
  const embeddings = batch.embeddings!;
  let text = '';
  for (let i = start; i < end; i++) {
    let vector = '';
    const base = i * dims;
    for (let d = 0; d < dims; d++) vector += (d === 0 ? '' : ',') + numberText(embeddings[base + d]!);
    text +=
      `{"id":${JSON.stringify(batch.ids[i])},"content":${JSON.stringify(batch.contents[i])}` +
      `,"metadata":${metadataTexts[i]}` +
      `,"confidence":${numberText(batch.confidence[i]!)},"activation":${numberText(batch.activation[i]!)}` +
      `,"createdAt":${numberText(batch.createdAt[i]!)},"lastAccessAt":${numberText(batch.lastAccessAt[i]!)}` +
      `,"accessCount":${numberText(batch.accessCount[i]!)},"tier":${JSON.stringify(batch.tiers[i])}` +
      `,"embedding":[${vector}]}\n`;
  }
  return text;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The lines of a file, streamed: yields [lineNumber, text] of each non-blank
 * line. A line may be of any length; a '\r' before '\n' is dropped, and a
 * UTF-8 byte order mark at the start of the file is skipped.
 */
async function* linesOf(file: string): AsyncGenerator<[number, string]> {
  const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  let pending: Buffer[] = [];
  let lineNumber = 0;
  const decode = (bytes: Buffer): string => {
    let b = bytes;
    if (lineNumber === 1 && b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    try {
      return strictUtf8.decode(b);
    } catch (error) {
      throw new TierStoreError('CORRUPTION', `import: ${file}, line ${lineNumber} is not valid UTF-8`, { cause: error });
    }
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let from = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, from);
        if (nl < 0) break;
        const piece = chunk.subarray(from, nl);
        const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        lineNumber++;
        const text = decode(bytes);
        if (text.trim() !== '') yield [lineNumber, text];
        from = nl + 1;
      }
      if (from < chunk.length) pending.push(chunk.subarray(from));
    }
    if (pending.length > 0) {
      lineNumber++;
      const text = decode(Buffer.concat(pending));
      if (text.trim() !== '') yield [lineNumber, text];
    }
  } finally {
    stream.destroy();
  }
}

const KNOWN_FIELDS = ['id', 'content', 'embedding', 'confidence', 'activation', 'createdAt', 'metadata'] as const;

/**
 * Batches of records from a JSONL file: at most `batchSize` records and
 * about `maxBytes` of line text each. A line that is not a JSON object is
 * CORRUPTION naming the line.
 */
export async function* jsonlBatches(file: string, batchSize: number, maxBytes: number): AsyncGenerator<RowBatch> {
  let batch: RowBatch = { inputs: [], tiers: [], positions: [] };
  let bytes = 0;
  for await (const [lineNumber, text] of linesOf(file)) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new TierStoreError(
        'CORRUPTION',
        `import: ${file}, line ${lineNumber} is not valid JSON (${(error as Error).message})`,
        { cause: error },
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TierStoreError('CORRUPTION', `import: ${file}, line ${lineNumber} is not a JSON object`);
    }
    const record = value as Record<string, unknown>;
    // Only the fields put() takes; access statistics restart on import.
    const input: Record<string, unknown> = {};
    for (const key of KNOWN_FIELDS) if (record[key] !== undefined) input[key] = record[key];
    batch.inputs.push(input as never);
    batch.tiers.push(typeof record.tier === 'string' ? record.tier : undefined);
    batch.positions.push(lineNumber);
    bytes += text.length;
    if (batch.inputs.length >= batchSize || bytes >= maxBytes) {
      yield batch;
      batch = { inputs: [], tiers: [], positions: [] };
      bytes = 0;
    }
  }
  if (batch.inputs.length > 0) yield batch;
}
