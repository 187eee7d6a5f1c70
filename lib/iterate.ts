// Tier iteration: sync and async iterators over native batches, and a batch
// iterator. Each pass opens its own native iterator on its first next(); it is
// closed at the end, by return() (a loop that breaks), on an error, or by the
// garbage collector (the native iterator's finalizer) when dropped unfinished.
import { memoryAt, toMemoryBatch } from './convert.js';
import { TierStoreError } from './errors.js';
import type { NativeFilter } from './filter.js';
import type { NativeBatch, NativeIterator } from './native.js';
import type { Memory, MemoryBatch, Tier, TierIterable } from './types.js';

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

class NativeCursor {
  #native: NativeIterator | undefined;
  #finished = false;
  readonly pass: Pass;

  constructor(pass: Pass) {
    this.pass = pass;
  }

  get finished(): boolean {
    return this.#finished;
  }

  #iterator(): NativeIterator {
    return (this.#native ??= this.pass.source.openIterator(this.pass.tier, this.pass.filter));
  }

  /** The next non-empty batch, or undefined at the end. */
  next(): NativeBatch | undefined {
    if (this.#finished) return undefined;
    try {
      const batch = this.#iterator().next(this.pass.batchSize, this.pass.includeEmbeddings);
      if (batch.ids.length !== 0) return batch;
    } catch (error) {
      this.finish();
      throw error;
    }
    this.finish();
    return undefined;
  }

  async nextAsync(): Promise<NativeBatch | undefined> {
    if (this.#finished) return undefined;
    try {
      const batch = await this.#iterator().nextAsync(this.pass.batchSize, this.pass.includeEmbeddings);
      if (batch.ids.length !== 0) return batch;
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

export class MemoryIterator<T extends Tier> implements IterableIterator<Memory<T>> {
  readonly #cursor: NativeCursor;
  readonly #dims: number;
  #batch: NativeBatch | undefined;
  #index = 0;
  #count = 0;

  constructor(pass: Pass) {
    this.#cursor = new NativeCursor(pass);
    this.#dims = pass.includeEmbeddings ? pass.source.dimensions : 0;
  }

  next(): IteratorResult<Memory<T>, undefined> {
    if (this.#cursor.pass.source.closed && this.#unfinished()) {
      // close() closes the handle's iterators: records already fetched are not yielded either.
      this.return();
      throw storeClosed();
    }
    while (this.#index >= this.#count) {
      const batch = this.#cursor.next();
      if (batch === undefined) {
        this.#batch = undefined;
        this.#index = this.#count = 0;
        return DONE;
      }
      this.#batch = batch;
      this.#index = 0;
      this.#count = batch.ids.length;
    }
    return { value: memoryAt<T>(this.#batch!, this.#index++, this.#dims), done: false };
  }

  return(): IteratorResult<Memory<T>, undefined> {
    this.#cursor.finish();
    this.#batch = undefined;
    this.#index = this.#count = 0;
    return DONE;
  }

  #unfinished(): boolean {
    return this.#index < this.#count || !this.#cursor.finished;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

export class AsyncMemoryIterator<T extends Tier> implements AsyncIterableIterator<Memory<T>> {
  readonly #cursor: NativeCursor;
  readonly #dims: number;
  #batch: NativeBatch | undefined;
  #index = 0;
  #count = 0;
  /** Calls run one after another, so batches never arrive out of order. */
  #queue: Promise<unknown> = Promise.resolve();
  /** next() calls queued and not yet settled. */
  #pending = 0;

  constructor(pass: Pass) {
    this.#cursor = new NativeCursor(pass);
    this.#dims = pass.includeEmbeddings ? pass.source.dimensions : 0;
  }

  #unfinished(): boolean {
    return this.#index < this.#count || !this.#cursor.finished;
  }

  /** After close(): drops what is buffered and closes the native iterator. */
  #stopIfClosed(): boolean {
    if (!this.#cursor.pass.source.closed || !this.#unfinished()) return false;
    this.#batch = undefined;
    this.#index = this.#count = 0;
    this.#cursor.finish();
    return true;
  }

  async #step(): Promise<IteratorResult<Memory<T>, undefined>> {
    if (this.#stopIfClosed()) throw storeClosed();
    while (this.#index >= this.#count) {
      const batch = await this.#cursor.nextAsync();
      if (batch === undefined) {
        this.#batch = undefined;
        this.#index = this.#count = 0;
        return DONE;
      }
      this.#batch = batch;
      this.#index = 0;
      this.#count = batch.ids.length;
    }
    return { value: memoryAt<T>(this.#batch!, this.#index++, this.#dims), done: false };
  }

  next(): Promise<IteratorResult<Memory<T>, undefined>> {
    if (this.#pending === 0 && this.#index < this.#count) {
      if (this.#stopIfClosed()) return Promise.reject(storeClosed());
      // Buffered and nothing queued before it: no native call needed.
      return Promise.resolve({ value: memoryAt<T>(this.#batch!, this.#index++, this.#dims), done: false });
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

  return(): Promise<IteratorResult<Memory<T>, undefined>> {
    // Drop what is buffered now; close the native iterator once a pending
    // call (if any) has settled.
    this.#batch = undefined;
    this.#index = this.#count = 0;
    const result = this.#queue.then(() => {
      this.#cursor.finish();
      this.#batch = undefined;
      this.#index = this.#count = 0;
      return DONE;
    });
    this.#queue = result;
    return result;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class BatchIterator<T extends Tier> implements IterableIterator<MemoryBatch<T>> {
  readonly #cursor: NativeCursor;

  constructor(pass: Pass) {
    this.#cursor = new NativeCursor(pass);
  }

  next(): IteratorResult<MemoryBatch<T>, undefined> {
    const batch = this.#cursor.next();
    return batch === undefined ? DONE : { value: toMemoryBatch<T>(batch), done: false };
  }

  return(): IteratorResult<MemoryBatch<T>, undefined> {
    this.#cursor.finish();
    return DONE;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

export class TierIterableImpl<T extends Tier> implements TierIterable<T> {
  readonly #pass: Pass;

  constructor(
    source: IterationSource, tier: number, includeEmbeddings: boolean, batchSize: number, filter: NativeFilter | undefined,
  ) {
    this.#pass = { source, tier, includeEmbeddings, batchSize, filter };
  }

  [Symbol.iterator](): MemoryIterator<T> {
    return new MemoryIterator<T>(this.#pass);
  }

  [Symbol.asyncIterator](): AsyncMemoryIterator<T> {
    return new AsyncMemoryIterator<T>(this.#pass);
  }

  batches(): BatchIterator<T> {
    return new BatchIterator<T>(this.#pass);
  }
}
