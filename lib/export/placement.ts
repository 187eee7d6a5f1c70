// Writing imported records into a store, batch by batch.
//
// PlainWriter (keepTiers: false): store.putMany per batch; records go to hot
// like any put, and the handle's capacities migrate them as usual.
//
// TierWriter (keepTiers: true): every record ends in the tier named by its
// `tier` column, and the import itself never triggers capacity migration.
// There is no batch move in the API, and a single move to cold stages the
// record and logs it once more, so it works with two extra handles on the
// same store (handles of one process share the native store; capacities are
// per handle):
//   - `stage` (unlimited capacities) does the putMany, so no put migrates;
//   - `sink` (hotCapacity 0, skipWarm) migrate()s whatever is in hot straight
//     to cold, in the engine's batched cold appends.
// For `sink` to move exactly the batch's cold records, hot must hold nothing
// else: records bound for hot are parked in warm (a cheap move) and return to
// hot when the import ends, and so are records that were in hot before the
// import. If hot holds anything unexpected (another writer), the batch falls
// back to moving its cold records one by one. The ids of parked records are
// kept in memory until the end (they are at most the hot tier, which lives
// in RAM anyway).
import { TierStoreError } from '../errors.js';
import { open, type MemoryStore } from '../store.js';
import type { MemoryInput, Tier } from '../types.js';

export interface BatchWriter {
  /** Writes one batch atomically (validation errors leave it unwritten). */
  put(inputs: MemoryInput[], tiers: Array<string | undefined>, positions: number[]): void;
  /** Ends the import (also after an error): hot records back to hot, helpers closed. */
  finish(): void;
}

export class PlainWriter implements BatchWriter {
  constructor(private readonly store: MemoryStore) {}

  put(inputs: MemoryInput[]): void {
    this.store.putMany(inputs);
  }

  finish(): void {}
}

function tierOf(value: string | undefined, position: number, id: unknown, label: string, file: string): Tier {
  if (value === undefined) return 'hot';
  if (value === 'hot' || value === 'warm' || value === 'cold') return value;
  throw new TierStoreError(
    'INVALID_ARGUMENT',
    `import: ${file}, ${label} ${position} (id ${JSON.stringify(id)}): tier must be 'hot', 'warm' or 'cold', got ${JSON.stringify(value)}`,
  );
}

export class TierWriter implements BatchWriter {
  readonly #store: MemoryStore;
  readonly #stage: MemoryStore;
  readonly #sink: MemoryStore;
  readonly #file: string;
  readonly #label: string;
  /** Records to return to hot at the end (parked in warm meanwhile). */
  readonly #parked = new Set<string>();
  #finished = false;

  constructor(store: MemoryStore, file: string, label: string) {
    this.#store = store;
    this.#file = file;
    this.#label = label;
    const common = { maxContentBytes: store.maxContentBytes };
    const stage = open(store.path, { ...common, hotCapacity: Number.MAX_SAFE_INTEGER, warmCapacity: Number.MAX_SAFE_INTEGER });
    let sink: MemoryStore;
    try {
      sink = open(store.path, { ...common, hotCapacity: 0, warmCapacity: Number.MAX_SAFE_INTEGER, skipWarm: true });
    } catch (error) {
      stage.close();
      throw error;
    }
    this.#stage = stage;
    this.#sink = sink;
    if (stage.dimensions !== store.dimensions) {
      this.finish();
      throw new TierStoreError('INVALID_ARGUMENT', `import: cannot reopen the store at ${store.path} (has the working directory changed?)`);
    }
    // Park what is in hot now (ids first: moving while iterating is allowed but pointless).
    const hotIds: string[] = [];
    for (const batch of store.iterate({ tier: 'hot', batchSize: 4096 }).batches()) hotIds.push(...batch.ids);
    try {
      for (const id of hotIds) {
        if (stage.move(id, 'warm')) this.#parked.add(id);
      }
    } catch (error) {
      this.finish(); // whatever was parked goes back to hot
      throw error;
    }
  }

  put(inputs: MemoryInput[], tierValues: Array<string | undefined>, positions: number[]): void {
    const n = inputs.length;
    // The tier of each id is that of its last occurrence (putMany: the last wins).
    const finalTier = new Map<string, Tier>();
    for (let i = 0; i < n; i++) {
      const id = inputs[i]!.id;
      finalTier.set(id, tierOf(tierValues[i], positions[i]!, id, this.#label, this.#file));
    }
    this.#stage.putMany(inputs);
    const coldIds: string[] = [];
    for (const [id, tier] of finalTier) {
      if (tier === 'cold') {
        this.#parked.delete(id);
        coldIds.push(id);
      } else {
        this.#stage.move(id, 'warm');
        if (tier === 'hot') this.#parked.add(id);
        else this.#parked.delete(id);
      }
    }
    if (coldIds.length === 0) return;
    if (this.#store.counts().hot === coldIds.length) {
      this.#sink.migrate();
    } else {
      for (const id of coldIds) this.#stage.move(id, 'cold');
    }
  }

  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    try {
      for (const id of this.#parked) this.#stage.move(id, 'hot');
    } finally {
      this.#parked.clear();
      this.#sink.close();
      this.#stage.close();
    }
  }
}
