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
  /** Exactly `dimensions` values, finite after rounding to float32 (stored as float32). */
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
  /** The record's id, as put. */
  id: string;
  /** The record's content, as put. */
  content: string;
  /** The record's metadata, deep-equal to what was put. */
  metadata: Record<string, unknown>;
  /** float32 precision: 0.9 reads back as 0.8999999761581421. */
  confidence: number;
  /** float32 precision. */
  activation: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /**
   * Milliseconds since the epoch: the put, or the latest get. An access
   * statistic, written by flush(), close() and migration; may be lost in a
   * crash.
   */
  lastAccessAt: number;
  /** Gets since the put (only get() counts). An access statistic, like lastAccessAt. */
  accessCount: number;
  /** The tier the record was read from. */
  tier: T;
  /** Only when asked for (includeEmbedding / includeEmbeddings). */
  embedding?: Float32Array;
}

/** Options of `open()` and `new MemoryStore()`. Only `dimensions` is stored; the others belong to the handle. */
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

/** Options of `get()`. */
export interface GetOptions {
  /** Adds the record's `embedding` as a Float32Array. Default false. */
  includeEmbedding?: boolean | undefined;
}

/** Options of `iterate()`. */
export interface IterateOptions<S extends TierSelector = TierSelector> {
  /** Default 'all': hot, then warm, then cold. The records' `tier` is typed by it. */
  tier?: S | undefined;
  /** Adds each record's `embedding`. Default false. */
  includeEmbeddings?: boolean | undefined;
  /** Records fetched per native call: integer 1..65536, default 1024. */
  batchSize?: number | undefined;
  /** Only the records matching it are yielded. */
  filter?: MemoryFilter | undefined;
}

/** Options of `list()`. */
export interface ListOptions {
  /** Default 'hot'; with a cursor, the cursor's tier (a tier given with a cursor must be its). */
  tier?: TierSelector | undefined;
  /** Integer >= 0, default 0. Not together with `cursor`. */
  offset?: number | undefined;
  /** Integer >= 1, default 100; larger than 1000 is clamped to 1000. */
  limit?: number | undefined;
  /** A `pagination.nextCursor` of an earlier page; the page after it, of the same tier and filter. */
  cursor?: string | undefined;
  /** Adds each record's `embedding`. Default false. */
  includeEmbeddings?: boolean | undefined;
  /** Only the records matching it are listed (tierCounts stay unfiltered); a cursor keeps its filter. */
  filter?: MemoryFilter | undefined;
}

/** Records in each tier now. */
export interface TierCounts {
  /** Records in hot. */
  hot: number;
  /** Records in warm. */
  warm: number;
  /** Records in cold. */
  cold: number;
  /** Records in the store: hot + warm + cold. */
  total: number;
}

/** n records, column by column. */
export interface MemoryBatch<T extends Tier = Tier> {
  /** Record i's tier: the tier it was read from. */
  tiers: T[];
  /** Record i's id. */
  ids: string[];
  /** Record i's content. */
  contents: string[];
  /** Record i's metadata. */
  metadata: Record<string, unknown>[];
  /** Record i's confidence (float32). */
  confidence: Float32Array;
  /** Record i's activation (float32). */
  activation: Float32Array;
  /** Record i's createdAt, ms since the epoch. */
  createdAt: Float64Array;
  /** Record i's lastAccessAt, ms since the epoch. */
  lastAccessAt: Float64Array;
  /** Record i's accessCount. */
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

/**
 * One page of `list()`, as engram's `GET /api/v1/memories` answers it.
 */
export interface ListPage {
  /** The page's records. */
  memories: Memory[];
  /** Records returned. */
  count: number;
  /** Where the page is. */
  pagination: {
    /** The offset asked for; 0 on cursor pages. */
    offset: number;
    /** The limit applied (at most 1000). */
    limit: number;
    /** Records returned, as `count`. */
    returned: number;
    /** The cursor of the next page; absent on the last page. */
    nextCursor?: string;
  };
  /** Counts of the whole store, unfiltered. */
  tierCounts: TierCounts;
}

/** Options of `recall()` and `recallAsync()`. */
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
  /** Adds each hit's `memory.embedding`. Default false. */
  includeEmbeddings?: boolean | undefined;
  /** The top k among the records matching it only. */
  filter?: MemoryFilter | undefined;
}

/** One result of `recall()`. */
export interface RecallHit {
  /** The record's id. */
  id: string;
  /**
   * Cosine similarity of the query and the stored float32 embedding, in
   * [-1, 1]; a record recalled with its own embedding scores exactly 1.
   */
  score: number;
  /** The tier the record was read from. */
  tier: Tier;
  /** The record itself. */
  memory: Memory;
}

/** What `migrate()` did. */
export interface MigrationReport {
  /** Records demoted from hot to warm. */
  hotToWarm: number;
  /** Records demoted from hot straight to cold (with skipWarm). */
  hotToCold: number;
  /** Records demoted from warm to cold. */
  warmToCold: number;
  /** Migration batches run. */
  batches: number;
}

/** What `compact()` did. */
export interface CompactionReport {
  /** Bytes freed by rewriting warm's variable-length section. */
  warmBytesReclaimed: number;
  /** Bytes freed by merging cold segments and dropping deleted rows. */
  coldBytesReclaimed: number;
  /** Cold segments before compaction. */
  coldSegmentsBefore: number;
  /** Cold segments after compaction. */
  coldSegmentsAfter: number;
  /** Size of the hot log before it was shrunk, in bytes. */
  hotLogBytesBefore: number;
  /** Size of the hot log after it was shrunk, in bytes. */
  hotLogBytesAfter: number;
}

/** What verify() found: every record read back and its checksums checked. */
export interface VerifyReport {
  /** Records read whole. */
  records: number;
  /** Their id, content, metadata and embedding bytes. */
  bytes: number;
  /** Every damaged record found (empty when the store is whole). */
  damaged: Array<{
    /** The tier the damaged record is in. */
    tier: Tier;
    /** The damaged file's path. */
    file: string;
    /** The damaged record's id, when known. */
    id?: string;
    /** What is wrong. */
    reason: string;
  }>;
}

/** What `stats()` returns: counts, file sizes and what recovery did at open. */
export interface StoreStats {
  /** Records in each tier. */
  counts: TierCounts;
  /** The store's embedding dimensions. */
  dimensions: number;
  /** Last sequence number assigned. */
  sequence: number;
  /** Size of the hot tier's log file, `hot.log`. */
  hotLogBytes: number;
  /** Bytes of records held in RAM. */
  hotBytes: number;
  /** Blocks allocated in warm (live and free). */
  warmSlots: number;
  /** Size of warm's block file. */
  warmBlockFileBytes: number;
  /** Size of warm's variable-length section file. */
  warmVarFileBytes: number;
  /** Bytes of warm's variable-length section that live records use; compact() reclaims the rest. */
  warmVarLiveBytes: number;
  /** Cold segments. */
  coldSegments: number;
  /** Total size of the cold segments. */
  coldFileBytes: number;
  /** Deleted rows still in cold segments; compact() drops them. */
  coldDeletedRows: number;
  /**
   * Cold records moved there one at a time and not yet sealed into a segment (they are cold
   * for every read; see docs/tiers.md). Included in `counts.cold`.
   */
  coldStagedRecords: number;
  /** Native iterators open on the store. */
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
  /** Size of the persisted id index, `id.index`, on disk (0 when there is none). */
  indexFileBytes: number;
  /** Heap the id index allocated: its slots once it outgrows the file's, and the ids added since the open. */
  indexMemoryBytes: number;
  /**
   * Bytes of `id.index` the id index uses in place (mapped privately: a page
   * whose entries change becomes private memory of the process, in its RSS).
   */
  indexMappedBytes: number;
  /**
   * The last open rebuilt the id index by reading the warm and cold data,
   * instead of reading `id.index`: see {@link StoreStats.indexRebuildReason}.
   */
  indexRebuilt: boolean;
  /**
   * Why the last open rebuilt the id index (`''` when it did not):
   * `'missing'` (no `id.index`), `'unclean'` (the store was not closed
   * cleanly: a crash), `'damaged'` (the file failed its checks), `'stale'`
   * (it does not belong to the store's last clean close) or `'format'` (an
   * index format this version does not read).
   */
  indexRebuildReason: '' | 'missing' | 'unclean' | 'damaged' | 'stale' | 'format';
  /** This handle was opened read-only. */
  readOnly: boolean;
}
