// MemoryStore: the public API over one native handle. Validates and
// normalises every argument here, then makes one native call per operation
// (one per batch for putMany and iteration).
import * as nodePath from 'node:path';

import { memoriesOf, memoryOfRecord } from './convert.js';
import { fail, TierStoreError, toTierStoreError } from './errors.js';
import { checkFilter, nativeFilterArgs, type NativeFilter } from './filter.js';
import { TierIterableImpl, type IterationSource } from './iterate.js';
import { loadAddon, type NativeIterator, type NativeRecallResult, type NativeStore } from './native.js';
import type {
  CompactionReport,
  GetOptions,
  IterateOptions,
  ListOptions,
  ListPage,
  Memory,
  MemoryInput,
  MigrationReport,
  OpenOptions,
  RecallHit,
  RecallOptions,
  StoreStats,
  Tier,
  TierCounts,
  TierIterable,
  TierSelector,
  VerifyReport,
} from './types.js';
import {
  checkBoolean,
  checkEmbeddingType,
  checkFiniteEmbedding,
  checkId,
  checkInteger,
  checkOptions,
  checkPath,
  checkWholeNumber,
  DEFAULT_MAX_CONTENT_BYTES,
  describe,
  finishEmbedding,
  MAX_BATCH_SIZE,
  MAX_RECALL_K,
  DEFAULT_RECALL_K,
  MAX_CONTENT_BYTES_LIMIT,
  MAX_DIMENSIONS,
  MAX_LIST_LIMIT,
  tierIndex,
} from './validate.js';
import { Columns, earlierRecordError, firstNonFinite, prepareRecord, Utf16Sink } from './write-batch.js';

const DEFAULT_HOT_CAPACITY = 10_000;
const DEFAULT_WARM_CAPACITY = 1_000_000;
const DEFAULT_BATCH_SIZE = 1024;
const DEFAULT_LIST_LIMIT = 100;
/** Embedding values one putMany may carry: the length limit of a Float32Array. */
const MAX_BATCH_FLOATS = 2 ** 32 - 1;
/** Records one putMany may carry: three strings each must fit one JS array. */
const MAX_BATCH_RECORDS = Math.floor((2 ** 32 - 1) / 3);
/** Scratch byte buffers larger than this are not kept between puts. */
const MAX_KEPT_SCRATCH = 1 << 20;

/**
 * A record error of put()'s form (`memory.<path> …`) as putMany() reports
 * it for record i: `memories[i].<path> …`, with `field` and `index` set.
 */
function relabel(error: unknown, i: number): unknown {
  if (!(error instanceof TierStoreError)) return error;
  const field = error.field?.startsWith('memory') ? `memories[${i}]${error.field.slice('memory'.length)}` : error.field;
  const message = error.message.startsWith('memory') ? `memories[${i}]${error.message.slice('memory'.length)}` : error.message;
  return new TierStoreError(error.code, message, { field, index: i, cause: error.cause });
}

/** The tier selector a list cursor was made for (`ts1:<selector>:…`), if it names one. */
function cursorTier(cursor: string): TierSelector | undefined {
  const match = /^ts1:(hot|warm|cold|all):/.exec(cursor);
  return match === null ? undefined : (match[1] as TierSelector);
}

/**
 * A list cursor is the native layer's position, followed by `:f<key>` when
 * the listing has a filter (the filter's digest): a cursor keeps its filter.
 */
function withFilterKey(nativeCursor: string, filter: NativeFilter | undefined): string {
  return filter === undefined ? nativeCursor : `${nativeCursor}:f${filter.key}`;
}

/** The native position of a cursor, after checking it was made with `filter` for `tier`. */
function cursorPosition(cursor: string, filter: NativeFilter | undefined, tier: TierSelector): string {
  const match = /^(ts1:(hot|warm|cold|all):\d:\d{1,20})(?::f([A-Za-z0-9_-]+))?$/.exec(cursor);
  if (match === null) {
    fail('INVALID_ARGUMENT', `list(): options.cursor is not a nextCursor returned by list() (got ${describe(cursor)})`,
      'list(): options.cursor');
  }
  if (match[2] !== tier) {
    fail('INVALID_ARGUMENT',
      `list(): options.cursor belongs to a listing of tier '${match[2]}', not '${tier}'; pass the cursor only with the tier it came from`,
      'list(): options.cursor');
  }
  if ((match[3] ?? '') !== (filter?.key ?? '')) {
    fail(
      'INVALID_ARGUMENT',
      match[3] === undefined
        ? 'list(): options.cursor comes from a listing without a filter; pass it without options.filter'
        : 'list(): options.cursor comes from a listing with another filter; pass the filter it was made with',
      'list(): options.cursor',
    );
  }
  return match[1]!;
}

/**
 * An open store handle, made by `open(path, options)` or
 * `new MemoryStore(path, options)` (the same thing). Methods called after
 * close() throw STORE_CLOSED; writes on a read-only handle throw READ_ONLY.
 */
export class MemoryStore implements IterationSource {
  /** The path given to open(). */
  readonly path: string;
  /** Embedding dimensions of the store. */
  readonly dimensions: number;
  /** Whether this handle was opened read-only. */
  readonly readOnly: boolean;
  /** Largest content accepted by this handle, in UTF-8 bytes. */
  readonly maxContentBytes: number;

  readonly #native: NativeStore;
  #closed = false;
  #putDepth = 0;
  #scratch: Columns | undefined;
  #scratchSink = new Utf16Sink(4096, 1);
  /** get()'s scalars, filled by the native layer and read right after. */
  readonly #getScalars = new Float64Array(6);

  constructor(path: string, options?: OpenOptions) {
    checkPath(path);
    const opts = checkOptions(options, 'open()') as OpenOptions | undefined;
    const dimensions = checkInteger(opts?.dimensions, 'open(): options.dimensions', 1, MAX_DIMENSIONS, 0);
    const hotCapacity = checkInteger(
      opts?.hotCapacity, 'open(): options.hotCapacity', 0, Number.MAX_SAFE_INTEGER, DEFAULT_HOT_CAPACITY);
    const warmCapacity = checkInteger(
      opts?.warmCapacity, 'open(): options.warmCapacity', 0, Number.MAX_SAFE_INTEGER, DEFAULT_WARM_CAPACITY);
    const skipWarm = checkBoolean(opts?.skipWarm, 'open(): options.skipWarm', false);
    // Only undefined means the default: null is refused, as for every other option.
    const durability = opts?.durability === undefined ? 'relaxed' : opts.durability;
    if (durability !== 'relaxed' && durability !== 'sync') {
      fail('INVALID_ARGUMENT', `open(): options.durability must be 'relaxed' or 'sync', got ${describe(durability)}`, 'open(): options.durability');
    }
    const readOnly = checkBoolean(opts?.readOnly, 'open(): options.readOnly', false);
    const maxContentBytes = checkInteger(
      opts?.maxContentBytes, 'open(): options.maxContentBytes', 0, MAX_CONTENT_BYTES_LIMIT, DEFAULT_MAX_CONTENT_BYTES);

    const addon = loadAddon();
    try {
      this.#native = new addon.NativeStore(
        nodePath.resolve(path), dimensions, readOnly, hotCapacity, warmCapacity, skipWarm, durability === 'sync');
    } catch (error) {
      const e = toTierStoreError(error);
      // The dimensions a new store needs, or that disagree with the store's.
      if (e instanceof TierStoreError && e.field === undefined &&
          (e.code === 'DIMENSION_MISMATCH' || (e.code === 'INVALID_ARGUMENT' && /pass dimensions/.test(e.message)))) {
        throw new TierStoreError(e.code, e.message, { field: 'dimensions', cause: e.cause });
      }
      throw e;
    }
    this.path = path;
    this.dimensions = this.#native.dimensions();
    this.readOnly = readOnly;
    this.maxContentBytes = maxContentBytes;
  }

  #open(method: string): NativeStore {
    if (this.#closed) fail('STORE_CLOSED', `${method}: the store is closed`);
    return this.#native;
  }

  #writable(method: string): NativeStore {
    if (this.#closed) fail('STORE_CLOSED', `${method}: the store is closed`);
    if (this.readOnly) fail('READ_ONLY', `${method}: the store was opened with readOnly: true`);
    return this.#native;
  }

  /** Inserts or replaces one memory; the new version goes to hot. */
  put(memory: MemoryInput): void {
    const native = this.#writable('put()');
    const dims = this.dimensions;
    // A getter of `memory` may call put() again: only the outermost call uses the scratch.
    const outermost = this.#putDepth === 0;
    const cols = outermost ? (this.#scratch ??= new Columns(1, dims)) : new Columns(1, dims);
    const sink = outermost ? this.#scratchSink : new Utf16Sink(4096, 1);
    sink.reset();
    this.#putDepth++;
    try {
      prepareRecord(memory, cols, 0, dims, this.maxContentBytes, Date.now(), sink);
      this.#writeBatch(native, cols, sink, 1, false);
    } finally {
      this.#putDepth--;
      if (outermost && sink.bytes.length > MAX_KEPT_SCRATCH) this.#scratchSink = new Utf16Sink(4096, 1);
    }
  }

  /**
   * Validates every memory, then writes them all atomically in one call.
   * Within the batch a repeated id: the last wins. Returns the number given.
   */
  putMany(memories: Iterable<MemoryInput>): number {
    const native = this.#writable('putMany()');
    let list: readonly unknown[];
    if (Array.isArray(memories)) {
      list = memories;
    } else if (
      memories !== null &&
      (typeof memories === 'object' || typeof memories === 'function') &&
      typeof (memories as Iterable<unknown>)[Symbol.iterator] === 'function'
    ) {
      list = Array.from(memories as Iterable<unknown>);
    } else {
      fail('INVALID_ARGUMENT', `putMany(): memories must be an iterable of memory objects, got ${describe(memories)}`, 'memories');
    }
    const n = list.length;
    if (n === 0) return 0;
    const dims = this.dimensions;
    // The columns hold every embedding of the batch at once.
    if (n > MAX_BATCH_RECORDS || n * dims > MAX_BATCH_FLOATS) {
      fail('INVALID_ARGUMENT',
        `putMany(): ${n} memories of ${dims} dimensions do not fit one batch (at most ${Math.min(MAX_BATCH_RECORDS, Math.floor(MAX_BATCH_FLOATS / dims))}); split them into smaller batches`);
    }
    const cols = new Columns(n, dims);
    const sink = new Utf16Sink(Math.min(n, 16) * 4096, n);
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      try {
        prepareRecord(list[i], cols, i, dims, this.maxContentBytes, now, sink);
      } catch (error) {
        // Contents and finiteness are checked natively: an earlier record they
        // would refuse is the first bad record.
        const earlier = earlierRecordError(sink, cols, i, dims, this.maxContentBytes);
        throw earlier ? relabel(earlier.error, earlier.index) : relabel(error, i);
      }
    }
    this.#writeBatch(native, cols, sink, n, true);
    return n;
  }

  /**
   * Hands a validated batch to the native layer, which converts its strings
   * (refusing lone surrogates and content over maxContentBytes: errors that
   * carry the record's index) and checks embedding finiteness.
   */
  #writeBatch(native: NativeStore, cols: Columns, sink: Utf16Sink, n: number, batch: boolean): void {
    try {
      // The whole buffer, not a subarray (a Buffer view costs an allocation
      // per put): the lengths say how much of it the records take.
      native.putMany(sink.bytes, cols.lengths, cols.embeddings, cols.scalars, this.maxContentBytes);
    } catch (error) {
      if (!(error instanceof TierStoreError)) throw error;
      // Closed meanwhile (by a getter of the memory): named after the caller's method.
      if (error.code === 'STORE_CLOSED') fail('STORE_CLOSED', `${batch ? 'putMany()' : 'put()'}: the store is closed`);
      const index = (error as TierStoreError & { recordIndex?: unknown }).recordIndex;
      if (typeof index === 'number') {
        // Finiteness is checked after every string: a record before this one
        // may hold a non-finite value.
        const earlier = batch ? earlierRecordError(sink, cols, index, this.dimensions, this.maxContentBytes) : undefined;
        if (earlier) throw relabel(earlier.error, earlier.index);
        // The native layer's record errors are all about the content.
        const clean = new TierStoreError(error.code, error.message, { field: 'memory.content' });
        throw batch ? relabel(clean, index) : clean;
      }
      const named = error.code === 'INVALID_ARGUMENT' ? firstNonFinite(cols, n, this.dimensions) : undefined;
      if (named === undefined) throw error;
      throw batch ? relabel(named.error, named.index) : named.error;
    }
  }

  /** The memory with this id, or undefined. Updates its lastAccessAt and accessCount. */
  get(id: string, options?: GetOptions): Memory | undefined {
    const native = this.#open('get()');
    checkId(id, 'get(): id');
    const includeEmbedding =
      options === undefined
        ? false
        : checkBoolean(checkOptions(options, 'get()')?.includeEmbedding, 'get(): options.includeEmbedding', false);
    // The id looked up is the id found (ids match byte for byte, and a
    // well-formed string's UTF-8 decodes back to it).
    const record = native.get(id, includeEmbedding, this.#getScalars);
    return record === undefined ? undefined : memoryOfRecord(id, record, this.#getScalars);
  }

  /** Whether a memory with this id exists. Changes nothing. */
  has(id: string): boolean {
    const native = this.#open('has()');
    checkId(id, 'has(): id');
    return native.has(id);
  }

  /** Deletes the memory; returns whether it existed. */
  delete(id: string): boolean {
    const native = this.#writable('delete()');
    checkId(id, 'delete(): id');
    return native.delete(id);
  }

  /** Moves the memory to `tier`; returns whether it exists (true if already there). */
  move(id: string, tier: Tier): boolean {
    const native = this.#writable('move()');
    checkId(id, 'move(): id');
    return native.move(id, tierIndex(tier, 'move(): tier', false));
  }

  /** Applies this handle's capacities now: after it returns, every tier is within its capacity. */
  migrate(): MigrationReport {
    return this.#writable('migrate()').migrate();
  }

  /** The records in each tier now: `{ hot, warm, cold, total }`. */
  counts(): TierCounts {
    return this.#open('counts()').counts();
  }

  /**
   * Iterates a tier ('all': hot, then warm, then cold). Synchronously
   * (for...of), asynchronously (for await...of: the native reads run off the
   * JS thread) or batch by batch (batches()).
   */
  iterate<S extends TierSelector = 'all'>(options?: IterateOptions<S>): TierIterable<S extends 'all' ? Tier : S> {
    this.#open('iterate()');
    const opts = checkOptions(options, 'iterate()') as IterateOptions<S> | undefined;
    const tier = opts?.tier === undefined ? 3 : tierIndex(opts.tier, 'iterate(): options.tier', true);
    const includeEmbeddings = checkBoolean(opts?.includeEmbeddings, 'iterate(): options.includeEmbeddings', false);
    const batchSize = checkInteger(opts?.batchSize, 'iterate(): options.batchSize', 1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE);
    const filter = checkFilter(opts?.filter, 'iterate()');
    return new TierIterableImpl<S extends 'all' ? Tier : S>(this, tier, includeEmbeddings, batchSize, filter);
  }

  /** @internal IterationSource: a native iterator of this handle. */
  openIterator(tier: number, filter: NativeFilter | undefined): NativeIterator {
    return this.#open('iterate()').iterator(tier, ...nativeFilterArgs(filter));
  }

  /**
   * One page of a tier (default 'hot'), by offset or by cursor.
   * `limit` defaults to 100 and is clamped to 1000.
   */
  list(options?: ListOptions): ListPage {
    const native = this.#open('list()');
    const opts = checkOptions(options, 'list()');
    // Without a tier, a cursor continues the listing it came from (the
    // README's list({ cursor: page.pagination.nextCursor })); a tier given
    // with it must be that one.
    const tierName = opts?.tier !== undefined ? opts.tier : typeof opts?.cursor === 'string' ? cursorTier(opts.cursor) : undefined;
    const tier = tierName === undefined ? 0 : tierIndex(tierName, 'list(): options.tier', true);
    // Any integer is a valid offset or limit (docs/api.md: limit an integer
    // >= 1, capped; offset an integer >= 0), 1e20 too: an offset past every
    // record is an empty page, so the native layer gets at most
    // MAX_SAFE_INTEGER.
    const offset = checkWholeNumber(opts?.offset, 'list(): options.offset', 0, 0);
    const limit = Math.min(checkWholeNumber(opts?.limit, 'list(): options.limit', 1, DEFAULT_LIST_LIMIT), MAX_LIST_LIMIT);
    const cursor = opts?.cursor;
    if (cursor !== undefined) {
      if (typeof cursor !== 'string' || cursor.length === 0) {
        fail('INVALID_ARGUMENT', `list(): options.cursor must be a nextCursor string from an earlier page, got ${describe(cursor)}`, 'list(): options.cursor');
      }
      if (opts?.offset !== undefined) {
        fail('INVALID_ARGUMENT', 'list(): pass either options.cursor or options.offset, not both', 'list(): options.cursor');
      }
    }
    const includeEmbeddings = checkBoolean(opts?.includeEmbeddings, 'list(): options.includeEmbeddings', false);
    const filter = checkFilter(opts?.filter, 'list()');
    const selector = (['hot', 'warm', 'cold', 'all'] as const)[tier]!;
    const position = cursor === undefined ? '' : cursorPosition(cursor, filter, selector);
    const result = native.list(
      tier, Math.min(offset, Number.MAX_SAFE_INTEGER), limit, position, includeEmbeddings, ...nativeFilterArgs(filter));
    const memories = memoriesOf(result, this.dimensions);
    const returned = memories.length;
    const pagination: ListPage['pagination'] = { offset, limit, returned };
    if (result.nextCursor !== '') pagination.nextCursor = withFilterKey(result.nextCursor, filter);
    return { memories, count: returned, pagination, tierCounts: result.tierCounts };
  }

  /**
   * The k memories most similar to `query` by cosine similarity, best first
   * (ties by ascending id bytes): exact, every tier scored the same way.
   */
  recall(query: Float32Array | Float64Array | readonly number[], options?: RecallOptions): RecallHit[] {
    const native = this.#open('recall()');
    const [q, k, tier, minConfidence, includeEmbeddings, filter] = this.#recallArgs(query, options, 'recall()');
    return this.#hits(native.recall(q, k, tier, minConfidence, includeEmbeddings, ...nativeFilterArgs(filter)));
  }

  /** recall() computed on native worker threads; every error rejects the promise. */
  recallAsync(query: Float32Array | Float64Array | readonly number[], options?: RecallOptions): Promise<RecallHit[]> {
    try {
      const native = this.#open('recallAsync()');
      const [q, k, tier, minConfidence, includeEmbeddings, filter] = this.#recallArgs(query, options, 'recallAsync()');
      return native
        .recallAsync(q, k, tier, minConfidence, includeEmbeddings, ...nativeFilterArgs(filter))
        .then((result) => this.#hits(result));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #recallArgs(
    query: unknown, options: RecallOptions | undefined, where: string,
  ): [Float32Array, number, number, number | null, boolean, NativeFilter | undefined] {
    const dims = this.dimensions;
    const q = new Float32Array(dims);
    // Every type is checked before the query's length (a wrong type is
    // INVALID_ARGUMENT before any length check), so the options' types come
    // between the two halves of the query's check.
    const queryField = `${where}: query`;
    const queryLength = checkEmbeddingType(query, queryField, dims, q, 0);
    const opts = checkOptions(options, where);
    // Each option is read once: a getter must not pass the check with one
    // value and hand the store another.
    const k = checkInteger(opts?.k, `${where}: options.k`, 1, MAX_RECALL_K, DEFAULT_RECALL_K);
    const tierOption = opts?.tier;
    const tier = tierOption === undefined ? 3 : tierIndex(tierOption, `${where}: options.tier`, true);
    const minOption: unknown = opts?.minConfidence;
    let minConfidence: number | null = null;
    if (minOption !== undefined) {
      if (typeof minOption !== 'number' || !Number.isFinite(minOption)) {
        fail('INVALID_ARGUMENT', `${where}: options.minConfidence must be a finite number, got ${describe(minOption)}`, `${where}: options.minConfidence`);
      }
      minConfidence = minOption;
    }
    const includeEmbeddings = checkBoolean(opts?.includeEmbeddings, `${where}: options.includeEmbeddings`, false);
    const filter = checkFilter(opts?.filter, where);
    finishEmbedding(query, queryField, dims, q, 0, queryLength);
    checkFiniteEmbedding(queryField, dims, q, 0);
    // An all-zero query (after rounding to float32) has no direction: every
    // record would score 0. It is refused, so a broken embedding call shows.
    if (q.every((x) => x === 0)) {
      fail('INVALID_ARGUMENT', `${queryField} is all zeros (after rounding to float32); a query needs a direction`, queryField);
    }
    return [q, k, tier, minConfidence, includeEmbeddings, filter];
  }

  #hits(result: NativeRecallResult): RecallHit[] {
    const memories = memoriesOf(result, this.dimensions);
    return memories.map((memory, i) => ({ id: memory.id, score: result.scores[i]!, tier: memory.tier, memory }));
  }

  /** Forces everything written so far to stable storage (fsync), and writes the access statistics. */
  flush(): void {
    this.#open('flush()').flush();
  }

  /**
   * Reclaims space: rewrites warm's variable-length section, merges cold
   * segments and drops deleted rows, and shrinks the hot log. Readers are
   * never disturbed.
   */
  compact(): CompactionReport {
    return this.#writable('compact()').compact() as unknown as CompactionReport;
  }

  /** Counts, file sizes, and what recovery did at open. */
  stats(): StoreStats {
    return this.#open('stats()').stats() as unknown as StoreStats;
  }

  /**
   * Reads every record of every tier and checks its checksums, embeddings
   * included. Damage is listed in the report, not thrown; throws only for a
   * closed store or an I/O error. Writers wait while it runs.
   */
  verify(): VerifyReport {
    const report = this.#open('verify()').verify();
    return {
      records: report.records,
      bytes: report.bytes,
      damaged: report.damaged.map((d) => ({ tier: d.tier as Tier, file: d.file, id: d.id, reason: d.reason })),
    };
  }

  /** Closes this handle (and its iterators). A second close() does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#scratch = undefined;
    this.#native.close();
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }
}

/** Opens (or, with `dimensions`, creates) the store at `path`. */
export function open(path: string, options?: OpenOptions): MemoryStore {
  return new MemoryStore(path, options);
}
