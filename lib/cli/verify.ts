// `tierstore verify`: reads every record of every tier with its embedding.
// The engine checks each record's data and embedding checksums as it reads
// them (hot records were checked when the log was replayed at open), so a
// damaged record surfaces as CORRUPTION naming the file. On top of that this
// checks that no id appears twice, that each batch carries a full embedding
// per record, and that counts() agrees with what was read, tier by tier.
import type { MemoryStore } from '../store.js';
import type { Tier, TierCounts } from '../types.js';
import { Progress } from './progress.js';

export interface VerifyResult {
  ok: boolean;
  /** Records read, per tier and in total. */
  read: TierCounts;
  /** What counts() reported before reading. */
  counts: TierCounts;
  duplicates: string[];
  problems: string[];
}

const MAX_LISTED_DUPLICATES = 20;

/** Reads everything; throws the engine's TierStoreError (e.g. CORRUPTION) if a read fails. */
export function verifyStore(store: MemoryStore, batchSize: number, onRead?: (done: number) => void): VerifyResult {
  const counts = store.counts();
  const read: TierCounts = { hot: 0, warm: 0, cold: 0, total: 0 };
  const seen = new Set<string>();
  const duplicates: string[] = [];
  const problems: string[] = [];
  let duplicateCount = 0;
  const progress = new Progress('verify', counts.total);
  const dims = store.dimensions;
  try {
    for (const batch of store.iterate({ includeEmbeddings: true, batchSize }).batches()) {
      const n = batch.ids.length;
      const embeddingValues = batch.embeddings?.length ?? 0;
      if (embeddingValues !== n * dims) {
        problems.push(`a batch of ${n} records carried ${embeddingValues} embedding values, expected ${n * dims}`);
      }
      for (let i = 0; i < n; i++) {
        const id = batch.ids[i]!;
        const tier: Tier = batch.tiers[i]!;
        read[tier]++;
        if (seen.has(id)) {
          duplicateCount++;
          if (duplicates.length < MAX_LISTED_DUPLICATES) {
            duplicates.push(id);
            problems.push(`id ${JSON.stringify(id)} was read twice (again in ${tier})`);
          }
        } else {
          seen.add(id);
        }
      }
      read.total += n;
      progress.update(read.total);
      onRead?.(read.total);
    }
  } finally {
    progress.finish();
  }
  if (duplicateCount > duplicates.length) {
    problems.push(`${duplicateCount} ids were read more than once (the first ${duplicates.length} are listed)`);
  }
  for (const tier of ['hot', 'warm', 'cold', 'total'] as const) {
    if (read[tier] !== counts[tier]) problems.push(`counts() says ${tier} holds ${counts[tier]} records, ${read[tier]} were read`);
  }
  return { ok: problems.length === 0, read, counts, duplicates, problems };
}
