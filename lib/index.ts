// tierstore: a tiered store for AI-agent memories.
export { MemoryStore, open } from './store.js';
export { TierStoreError } from './errors.js';
export type { ErrorCode, TierStoreErrorOptions } from './errors.js';
export type {
  CompactionReport,
  GetOptions,
  IterateOptions,
  ListOptions,
  ListPage,
  Memory,
  MemoryBatch,
  MemoryFilter,
  MetadataFilterValue,
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
