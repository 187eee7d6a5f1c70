// Tier iteration: sync and async iterators over native batches, yielding
// records, MemoryBatches or Arrow record batches. Each pass opens its own
// native iterator on its first next(); it is closed at the end, by return()
// (a loop that breaks), on an error, or by the garbage collector (the native
// iterator's finalizer) when dropped unfinished.
import { memoryAt, toMemoryBatch } from './convert.js';
import { TierStoreError } from './errors.js';
import type { NativeFilter } from './filter.js';
import type { RecordBatch } from 'apache-arrow';

import { chunkToRecordBatch, exportSchema } from './export/schema.js';
import type { NativeBatch, NativeColumns, NativeIterator } from './native.js';
import type { Memory, MemoryBatch, Tier, TierIterable, TierSelector } from './types.js';

/** What an iterable needs from its store. */
export interface IterationSource {
  /** Opens a native iterator (throws STORE_CLOSED after close). */
  openIterator(tier: number, filter: NativeFilter | undefined): NativeIterator;
  readonly dimensions: number;
  /** Whether the store handle was closed: its iterators stop, buffered records too. */
  readonly closed: boolean;
}

interface Pass {
  source: IterationSource;
  tier: number;
  includeEmbeddings: boolean;
  batchSize: number;
  filter: NativeFilter | undefined;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true }) as IteratorReturnResult<undefined>;

/** What next() of an unfinished iterator of a closed handle throws (as the native iterator does). */
function storeClosed(): TierStoreError {
  return new TierStoreError('STORE_CLOSED', 'iterate(): the store is closed');
}

/**
 * How a kind of pass reads native batches (B) and what it yields from each
 * (T): records of a batch, a batch as columns, a batch as Arrow batches.
 */
interface BatchKind<B, T> {
  fetch(native: NativeIterator, pass: Pass): B;
  fetchAsync(native: NativeIterator, pass: Pass): Promise<B>;
  /** Records in the batch: 0 is the end. */
  records(batch: B): number;
  /** Items the batch yields, and item i of it. */
  count(batch: B): number;
  item(batch: B, i: number, pass: Pass): T;
}

class NativeCursor<B> {
  #native: NativeIterator | undefined;
  #finished = false;
  readonly pass: Pass;
  readonly #kind: BatchKind<B, unknown>;

  constructor(pass: Pass, kind: BatchKind<B, unknown>) {
    this.pass = pass;
    this.#kind = kind;
  }

  get finished(): boolean {
    return this.#finished;
  }

  #iterator(): NativeIterator {
    return (this.#native ??= this.pass.source.openIterator(this.pass.tier, this.pass.filter));
  }

  /** The next non-empty batch, or undefined at the end. */
  next(): B | undefined {
    if (this.#finished) return undefined;
    try {
      const batch = this.#kind.fetch(this.#iterator(), this.pass);
      if (this.#kind.records(batch) !== 0) return batch;
    } catch (error) {
      this.finish();
      throw error;
    }
    this.finish();
    return undefined;
  }

  async nextAsync(): Promise<B | undefined> {
    if (this.#finished) return undefined;
    try {
      const batch = await this.#kind.fetchAsync(this.#iterator(), this.pass);
      if (this.#kind.records(batch) !== 0) return batch;
    } catch (error) {
      this.finish();
      throw error;
    }
    this.finish();
    return undefined;
  }

  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    const native = this.#native;
    this.#native = undefined;
    native?.close();
  }
}

/** The items of the current native batch, and the cursor behind them. */
class Buffered<B, T> {
  readonly cursor: NativeCursor<B>;
  readonly kind: BatchKind<B, T>;
  batch: B | undefined;
  index = 0;
  count = 0;

  constructor(pass: Pass, kind: BatchKind<B, T>) {
    this.cursor = new NativeCursor(pass, kind);
    this.kind = kind;
  }

  get buffered(): boolean {
    return this.index < this.count;
  }

  take(): IteratorYieldResult<T> {
    return { value: this.kind.item(this.batch!, this.index++, this.cursor.pass), done: false };
  }

  /** Holds `batch` (undefined: the end); returns whether there is one. */
  hold(batch: B | undefined): boolean {
    this.batch = batch;
    this.index = 0;
    this.count = batch === undefined ? 0 : this.kind.count(batch);
    return batch !== undefined;
  }

  drop(): void {
    this.batch = undefined;
    this.index = this.count = 0;
  }

  /** close() of the store stops its unfinished iterators, buffered items too. */
  stoppedByClose(): boolean {
    if (!this.cursor.pass.source.closed || (!this.buffered && this.cursor.finished)) return false;
    this.drop();
    this.cursor.finish();
    return true;
  }
}

class SyncIterator<B, T> implements IterableIterator<T> {
  readonly #b: Buffered<B, T>;

  constructor(pass: Pass, kind: BatchKind<B, T>) {
    this.#b = new Buffered(pass, kind);
  }

  next(): IteratorResult<T, undefined> {
    const b = this.#b;
    if (b.stoppedByClose()) throw storeClosed();
    while (!b.buffered) {
      if (!b.hold(b.cursor.next())) return DONE;
    }
    return b.take();
  }

  return(): IteratorResult<T, undefined> {
    this.#b.cursor.finish();
    this.#b.drop();
    return DONE;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

class AsyncIterator<B, T> implements AsyncIterableIterator<T> {
  readonly #b: Buffered<B, T>;
  /** Calls run one after another, so batches never arrive out of order. */
  #queue: Promise<unknown> = Promise.resolve();
  /** next() calls queued and not yet settled. */
  #pending = 0;

  constructor(pass: Pass, kind: BatchKind<B, T>) {
    this.#b = new Buffered(pass, kind);
  }

  async #step(): Promise<IteratorResult<T, undefined>> {
    const b = this.#b;
    if (b.stoppedByClose()) throw storeClosed();
    while (!b.buffered) {
      if (!b.hold(await b.cursor.nextAsync())) return DONE;
    }
    return b.take();
  }

  next(): Promise<IteratorResult<T, undefined>> {
    const b = this.#b;
    if (this.#pending === 0 && b.buffered) {
      if (b.stoppedByClose()) return Promise.reject(storeClosed());
      // Buffered and nothing queued before it: no native call needed.
      return Promise.resolve(b.take());
    }
    // Behind the calls still pending, so results come in call order (the
    // async iterator protocol's queue), also when next() is called again
    // before earlier promises settled.
    this.#pending++;
    const result = this.#queue.then(() => this.#step()).finally(() => {
      this.#pending--;
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  return(): Promise<IteratorResult<T, undefined>> {
    // Drop what is buffered now; close the native iterator once a pending
    // call (if any) has settled.
    this.#b.drop();
    const result = this.#queue.then(() => {
      this.#b.cursor.finish();
      this.#b.drop();
      return DONE;
    });
    this.#queue = result;
    return result;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Records, one Memory at a time. */
const RECORDS: BatchKind<NativeBatch, Memory> = {
  fetch: (native, pass) => native.next(pass.batchSize, pass.includeEmbeddings),
  fetchAsync: (native, pass) => native.nextAsync(pass.batchSize, pass.includeEmbeddings),
  records: (batch) => batch.ids.length,
  count: (batch) => batch.ids.length,
  item: (batch, i, pass) => memoryAt(batch, i, pass.includeEmbeddings ? pass.source.dimensions : 0),
};

/** Each native batch as one MemoryBatch. */
const BATCHES: BatchKind<NativeBatch, MemoryBatch> = {
  ...RECORDS,
  count: () => 1,
  item: (batch) => toMemoryBatch(batch),
};

/** Each native batch as Arrow record batches (one per chunk of at most 256 MiB of strings). */
function arrowKind(schema: RecordBatch['schema']): BatchKind<NativeColumns, RecordBatch> {
  return {
    fetch: (native, pass) => native.next(pass.batchSize, pass.includeEmbeddings, true),
    fetchAsync: (native, pass) => native.nextAsync(pass.batchSize, pass.includeEmbeddings, true),
    records: (columns) => columns.count,
    count: (columns) => columns.chunks.length,
    item: (columns, i) => chunkToRecordBatch(schema, columns.chunks[i]!),
  };
}

/** What arrow() returns: each pass (for...of or for await...of) starts anew. */
class ArrowPasses implements Iterable<RecordBatch>, AsyncIterable<RecordBatch> {
  readonly #pass: Pass;
  readonly #kind: BatchKind<NativeColumns, RecordBatch>;

  constructor(pass: Pass, selector: TierSelector) {
    this.#pass = pass;
    const schema = exportSchema(pass.source.dimensions, selector, pass.includeEmbeddings);
    this.#kind = arrowKind(schema);
  }

  [Symbol.iterator](): IterableIterator<RecordBatch> {
    return new SyncIterator(this.#pass, this.#kind);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<RecordBatch> {
    return new AsyncIterator(this.#pass, this.#kind);
  }
}

const SELECTORS: readonly TierSelector[] = ['hot', 'warm', 'cold', 'all'];

export class TierIterableImpl<T extends Tier> implements TierIterable<T> {
  readonly #pass: Pass;

  constructor(
    source: IterationSource, tier: number, includeEmbeddings: boolean, batchSize: number, filter: NativeFilter | undefined,
  ) {
    this.#pass = { source, tier, includeEmbeddings, batchSize, filter };
  }

  [Symbol.iterator](): IterableIterator<Memory<T>> {
    return new SyncIterator(this.#pass, RECORDS as BatchKind<NativeBatch, Memory<T>>);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Memory<T>> {
    return new AsyncIterator(this.#pass, RECORDS as BatchKind<NativeBatch, Memory<T>>);
  }

  batches(): IterableIterator<MemoryBatch<T>> {
    return new SyncIterator(this.#pass, BATCHES as BatchKind<NativeBatch, MemoryBatch<T>>);
  }

  arrow(): Iterable<RecordBatch> & AsyncIterable<RecordBatch> {
    return new ArrowPasses(this.#pass, SELECTORS[this.#pass.tier]!);
  }
}
