// The addon's JS-side surface (native/binding), loaded once per process (per
// worker thread) with node-gyp-build from the package root.
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { TierStoreError } from './errors.js';
import type { TierCounts } from './types.js';

/** One batch of records, column by column, as the binding builds it. */
export interface NativeBatch {
  /** 0 hot, 1 warm, 2 cold. */
  tiers: Uint8Array;
  ids: string[];
  contents: string[];
  /** JSON text. */
  metadata: string[];
  confidence: Float32Array;
  activation: Float32Array;
  createdAt: Float64Array;
  lastAccessAt: Float64Array;
  accessCount: Float64Array;
  /** n x dimensions, when asked for. */
  embeddings?: Float32Array;
}

/**
 * What get() returns for a record found: content, metadata JSON text and
 * (when asked) the embedding. Its scalars go into the Float64Array passed
 * in: confidence, activation, createdAt, lastAccessAt, accessCount, tier
 * (0 hot, 1 warm, 2 cold). The caller has the id.
 */
export type NativeRecord = [content: string, metadata: string, embedding?: Float32Array];

export interface NativeListResult extends NativeBatch {
  /** '' on the last page. */
  nextCursor: string;
  tierCounts: TierCounts;
}

export interface NativeRecallResult extends NativeBatch {
  /** Cosine similarity of each record, best first. */
  scores: Float64Array;
}

/** One string column of a columnar chunk: UTF-8 bytes and count + 1 int32 offsets. */
export interface NativeStringColumn {
  data: Buffer;
  offsets: Int32Array;
}

/** Records of a native batch column by column, as Arrow lays them out. */
export interface NativeColumnChunk {
  count: number;
  tiers: NativeStringColumn;
  ids: NativeStringColumn;
  contents: NativeStringColumn;
  metadata: NativeStringColumn;
  confidence: Float32Array;
  activation: Float32Array;
  createdAt: BigInt64Array;
  lastAccessAt: BigInt64Array;
  accessCount: BigInt64Array;
  embeddings?: Float32Array;
}

/** A native batch as columns: `count` records in chunks of at most 256 MiB of string bytes. */
export interface NativeColumns {
  count: number;
  chunks: NativeColumnChunk[];
}

export interface NativeIterator {
  next(batchSize: number, includeEmbeddings: boolean, columns?: false): NativeBatch;
  next(batchSize: number, includeEmbeddings: boolean, columns: true): NativeColumns;
  nextAsync(batchSize: number, includeEmbeddings: boolean, columns?: false): Promise<NativeBatch>;
  nextAsync(batchSize: number, includeEmbeddings: boolean, columns: true): Promise<NativeColumns>;
  close(): void;
}

/** Tier numbers: 0 hot, 1 warm, 2 cold, 3 all. */
export interface NativeStore {
  path(): string;
  dimensions(): number;
  isClosed(): boolean;
  /**
   * `units`: the strings as UTF-16LE; `lengths`: their UTF-16 lengths, 3 per
   * record (id, content, metadata JSON); `scalars`: confidence, activation,
   * createdAt, lastAccessAt, 4 per record. Errors about one record's strings
   * carry its index as `recordIndex`.
   */
  putMany(units: Uint8Array, lengths: Uint32Array, embeddings: Float32Array, scalars: Float64Array, maxContentBytes: number): void;
  get(id: string, includeEmbedding: boolean, scalars: Float64Array): NativeRecord | undefined;
  has(id: string): boolean;
  delete(id: string): boolean;
  move(id: string, tier: number): boolean;
  migrate(): { hotToWarm: number; hotToCold: number; warmToCold: number; batches: number };
  counts(): TierCounts;
  /** The trailing filter pair (scalars, metadata JSON) as lib/filter.ts makes it; none for no filter. */
  iterator(tier: number, ...filter: NativeFilterArgs): NativeIterator;
  list(
    tier: number, offset: number, limit: number, cursor: string, includeEmbeddings: boolean, ...filter: NativeFilterArgs
  ): NativeListResult;
  recall(
    query: Float32Array, k: number, tier: number, minConfidence: number | null, includeEmbeddings: boolean,
    ...filter: NativeFilterArgs
  ): NativeRecallResult;
  recallAsync(
    query: Float32Array, k: number, tier: number, minConfidence: number | null, includeEmbeddings: boolean,
    ...filter: NativeFilterArgs
  ): Promise<NativeRecallResult>;
  flush(): void;
  compact(): Record<string, number>;
  stats(): Record<string, unknown>;
  verify(): { records: number; bytes: number; damaged: Array<{ tier: string; file: string; id: string; reason: string }> };
  close(): void;
}

/** No filter, or (scalars, metadata JSON). */
export type NativeFilterArgs = [] | [Float64Array, string];

export interface Addon {
  NativeStore: new (
    path: string,
    dimensions: number,
    readOnly: boolean,
    hotCapacity: number,
    warmCapacity: number,
    skipWarm: boolean,
    sync: boolean,
  ) => NativeStore;
  setErrorConstructor(ctor: new (code: string, message: string) => Error): void;
  limits: { maxIdBytes: number; maxContentBytes: number; maxDimensions: number };
}

/** The package root: lib/ (sources under vitest) and dist/ (built) both sit one level below it. */
const packageRoot = path.resolve(__dirname, '..');

let addon: Addon | undefined;

/** Loads the addon on first use (so importing the package never fails). */
export function loadAddon(): Addon {
  if (addon === undefined) {
    const requireFromRoot = createRequire(path.join(packageRoot, 'package.json'));
    const nodeGypBuild = requireFromRoot('node-gyp-build') as (dir: string) => Addon;
    const loaded = nodeGypBuild(packageRoot);
    loaded.setErrorConstructor(TierStoreError as unknown as new (code: string, message: string) => Error);
    addon = loaded;
  }
  return addon;
}
