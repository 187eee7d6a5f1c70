import type { RecordBatch } from 'apache-arrow';

import type { ErrorCode } from './errors.js';

export type { ErrorCode };

/** A storage tier: RAM (hot), memory-mapped blocks (warm), columnar segments (cold). */
export type Tier = 'hot' | 'warm' | 'cold';
/** A tier, or every tier (hot, then warm, then cold). */
export type TierSelector = Tier | 'all';

/** What `put` and `putMany` accept. */
export interface MemoryInput {
  /** 1..1024 UTF-8 bytes, unique in the store (a put of an existing id replaces it). */
  id: string;
  /** 0..maxContentBytes UTF-8 bytes (default 64 MiB). */
  content: string;
  /** Exactly `dimensions` values, finite after conversion to float32. */
  embedding: Float32Array | Float64Array | readonly number[];
  /** In [0, 1]; default 0.5. */
  confidence?: number | undefined;
  /** In [0, 1]; default = confidence. */
  activation?: number | undefined;
  /** Integer milliseconds since the epoch, within the range of Date; default Date.now(). */
  createdAt?: number | undefined;
  /** A plain object that survives JSON.parse(JSON.stringify(x)) unchanged; default {}. */
  metadata?: Record<string, unknown> | undefined;
}

/** A stored memory, as read back. */
export interface Memory<T extends Tier = Tier> {
  id: string;
  content: string;
  metadata: Record<string, unknown>;
  /** float32 precision. */
  confidence: number;
  /** float32 precision. */
  activation: number;
  createdAt: number;
  lastAccessAt: number;
  accessCount: number;
  /** The tier the record was read from. */
  tier: T;
  /** Only when asked for (includeEmbedding / includeEmbeddings). */
  embedding?: Float32Array;
}

export interface OpenOptions {
  /** Required to create a store (integer 1..65536); checked against the store on reopen. */
  dimensions?: number | undefined;
  /** Records kept in hot before the lowest-activation ones are demoted; integer >= 0, default 10_000. */
  hotCapacity?: number | undefined;
  /** Records kept in warm before demotion to cold; integer >= 0, default 1_000_000. */
  warmCapacity?: number | undefined;
  /** Demote hot straight to cold. Default false. */
  skipWarm?: boolean | undefined;
  /** 'relaxed' (default): writes survive a process kill; 'sync': also power loss (fsync). */
  durability?: 'relaxed' | 'sync' | undefined;
  /** Open for reading only (shares the directory lock with other readers). */
  readOnly?: boolean | undefined;
  /** Largest content accepted, in UTF-8 bytes: integer 0..2^31-1, default 64 MiB. */
  maxContentBytes?: number | undefined;
}

/**
 * Conditions a record must meet to be recalled, listed or iterated: all
 * given conditions hold.
 */
export interface MemoryFilter {
  /** createdAt >= this (ms since the epoch). */
  createdAfter?: number | undefined;
  /** createdAt < this (ms since the epoch). */
  createdBefore?: number | undefined;
  /** confidence >= this, compared at float32 as confidence is stored. */
  minConfidence?: number | undefined;
  /** activation >= this, compared at float32 as activation is stored. */
  minActivation?: number | undefined;
  /**
   * Top-level metadata keys: a scalar matches a record whose value at the
   * key equals it, or is an array holding an equal element; an array here
   * means any of its values. A key absent from a record matches nothing,
   * not even null.
   */
  metadata?: Record<string, MetadataFilterValue | MetadataFilterValue[]> | undefined;
}

/** A value a metadata condition compares with: strings by code units, numbers by value. */
export type MetadataFilterValue = string | number | boolean | null;

export interface GetOptions {
  includeEmbedding?: boolean | undefined;
}

export interface IterateOptions<S extends TierSelector = TierSelector> {
  /** Default 'all': hot, then warm, then cold. */
  tier?: S | undefined;
  includeEmbeddings?: boolean | undefined;
  /** Records fetched per native call: integer 1..65536, default 1024. */
  batchSize?: number | undefined;
  /** Only the records matching it are yielded. */
  filter?: MemoryFilter | undefined;
}

export interface ListOptions {
  /** Default 'hot'; with a cursor, the cursor's tier (a tier given with a cursor must be its). */
  tier?: TierSelector | undefined;
  /** Integer >= 0, default 0. Not together with `cursor`. */
  offset?: number | undefined;
  /** Integer >= 1, default 100; larger than 1000 is clamped to 1000. */
  limit?: number | undefined;
  /** A `pagination.nextCursor` of an earlier page; the page after it, of the same tier and filter. */
  cursor?: string | undefined;
  includeEmbeddings?: boolean | undefined;
  /** Only the records matching it are listed (tierCounts stay unfiltered); a cursor keeps its filter. */
  filter?: MemoryFilter | undefined;
}

export interface TierCounts {
  hot: number;
  warm: number;
  cold: number;
  total: number;
}

/** n records, column by column. */
export interface MemoryBatch<T extends Tier = Tier> {
  tiers: T[];
  ids: string[];
  contents: string[];
  metadata: Record<string, unknown>[];
  confidence: Float32Array;
  activation: Float32Array;
  createdAt: Float64Array;
  lastAccessAt: Float64Array;
  accessCount: Float64Array;
  /** n x dimensions, row-major, when asked for. */
  embeddings?: Float32Array;
}

/**
 * Iterates a tier (or all). Each `for...of` / `for await...of` starts a new
 * pass; breaking out of a loop closes the native iterator.
 */
export interface TierIterable<T extends Tier> extends Iterable<Memory<T>>, AsyncIterable<Memory<T>> {
  /** The records column by column, a native batch at a time. */
  batches(): Iterable<MemoryBatch<T>>;
  /**
   * The records as apache-arrow RecordBatches in the export schema (id,
   * content, metadata JSON and tier as Utf8; confidence and activation as
   * Float32; createdAt and lastAccessAt as Timestamp[ms, UTC]; accessCount
   * as Int64; embedding as FixedSizeList<Float32>[dimensions] only with
   * includeEmbeddings). A batch holds at most batchSize records and at most
   * 256 MiB of string bytes (a single larger record is a batch of its own);
   * once yielded it belongs to the caller. Sync and async, with the same
   * guarantees as iterating records.
   */
  arrow(): Iterable<RecordBatch> & AsyncIterable<RecordBatch>;
}

export interface ListPage {
  memories: Memory[];
  /** Records returned. */
  count: number;
  pagination: { offset: number; limit: number; returned: number; nextCursor?: string };
  tierCounts: TierCounts;
}

export interface RecallOptions {
  /** An integer >= 1 (at most 2^32 - 1), default 10; above the number of records, all of them. */
  k?: number | undefined;
  /** Default 'all'. */
  tier?: TierSelector | undefined;
  /**
   * Only records whose confidence is >= this finite number, compared at
   * float32 precision as confidence is stored: a record put with confidence
   * c passes minConfidence c.
   */
  minConfidence?: number | undefined;
  includeEmbeddings?: boolean | undefined;
  /** The top k among the records matching it only. */
  filter?: MemoryFilter | undefined;
}

export interface RecallHit {
  id: string;
  score: number;
  tier: Tier;
  memory: Memory;
}

export interface MigrationReport {
  hotToWarm: number;
  hotToCold: number;
  warmToCold: number;
  batches: number;
}

export interface CompactionReport {
  warmBytesReclaimed: number;
  coldBytesReclaimed: number;
  coldSegmentsBefore: number;
  coldSegmentsAfter: number;
  hotLogBytesBefore: number;
  hotLogBytesAfter: number;
}

/** What verify() found: every record read back and its checksums checked. */
export interface VerifyReport {
  /** Records read whole. */
  records: number;
  /** Their id, content, metadata and embedding bytes. */
  bytes: number;
  /** Every damaged record found (empty when the store is whole). */
  damaged: Array<{ tier: Tier; file: string; id?: string; reason: string }>;
}

export interface StoreStats {
  counts: TierCounts;
  dimensions: number;
  /** Last sequence number assigned. */
  sequence: number;
  hotLogBytes: number;
  /** Bytes of records held in RAM. */
  hotBytes: number;
  warmSlots: number;
  warmBlockFileBytes: number;
  warmVarFileBytes: number;
  warmVarLiveBytes: number;
  coldSegments: number;
  coldFileBytes: number;
  coldDeletedRows: number;
  openIterators: number;
  /** Copies removed by recovery at open. */
  recoveredDuplicates: number;
  /** Unacknowledged log tail dropped at open. */
  tornLogBytes: number;
  /**
   * Warm copies found torn at open after a crash (a power cut can leave
   * pages of a migration unwritten) while the hot log still held that exact
   * version: dropped, the log's copy kept. Damage elsewhere is CORRUPTION.
   */
  tornWarmCopies: number;
  /** This handle was opened read-only. */
  readOnly: boolean;
}
