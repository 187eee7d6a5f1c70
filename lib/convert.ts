// NativeBatch (columnar, as the binding returns it) -> public shapes.
import type { NativeBatch, NativeRecord } from './native.js';
import type { Memory, MemoryBatch, Tier } from './types.js';
import { TIERS } from './validate.js';

export function parseMetadata(text: string): Record<string, unknown> {
  return text === '{}' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

/** Record i of a batch. `dims` > 0 copies its embedding out (when the batch has them). */
export function memoryAt<T extends Tier = Tier>(batch: NativeBatch, i: number, dims: number): Memory<T> {
  const memory: Memory<T> = {
    id: batch.ids[i]!,
    content: batch.contents[i]!,
    metadata: parseMetadata(batch.metadata[i]!),
    confidence: batch.confidence[i]!,
    activation: batch.activation[i]!,
    createdAt: batch.createdAt[i]!,
    lastAccessAt: batch.lastAccessAt[i]!,
    accessCount: batch.accessCount[i]!,
    tier: TIERS[batch.tiers[i]!] as T,
  };
  const embeddings = batch.embeddings;
  if (embeddings !== undefined) {
    // A batch of one hands over its array; otherwise copy the row so a kept
    // memory does not keep the whole batch alive.
    memory.embedding =
      embeddings.length === dims ? embeddings : embeddings.slice(i * dims, (i + 1) * dims);
  }
  return memory;
}

/** The memory get() found: `id` as asked, `record` and `scalars` as NativeStore.get filled them. */
export function memoryOfRecord(id: string, record: NativeRecord, scalars: Float64Array): Memory {
  const memory: Memory = {
    id,
    content: record[0],
    metadata: parseMetadata(record[1]),
    confidence: scalars[0]!,
    activation: scalars[1]!,
    createdAt: scalars[2]!,
    lastAccessAt: scalars[3]!,
    accessCount: scalars[4]!,
    tier: TIERS[scalars[5]!] as Tier,
  };
  if (record[2] !== undefined) memory.embedding = record[2];
  return memory;
}

export function memoriesOf<T extends Tier = Tier>(batch: NativeBatch, dims: number): Memory<T>[] {
  const n = batch.ids.length;
  const out = new Array<Memory<T>>(n);
  for (let i = 0; i < n; i++) out[i] = memoryAt<T>(batch, i, dims);
  return out;
}

export function toMemoryBatch<T extends Tier>(batch: NativeBatch): MemoryBatch<T> {
  const n = batch.ids.length;
  const tiers = new Array<T>(n);
  const metadata = new Array<Record<string, unknown>>(n);
  for (let i = 0; i < n; i++) {
    tiers[i] = TIERS[batch.tiers[i]!] as T;
    metadata[i] = parseMetadata(batch.metadata[i]!);
  }
  const out: MemoryBatch<T> = {
    tiers,
    ids: batch.ids,
    contents: batch.contents,
    metadata,
    confidence: batch.confidence,
    activation: batch.activation,
    createdAt: batch.createdAt,
    lastAccessAt: batch.lastAccessAt,
    accessCount: batch.accessCount,
  };
  if (batch.embeddings !== undefined) out.embeddings = batch.embeddings;
  return out;
}
