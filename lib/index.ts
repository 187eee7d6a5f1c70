// tierstore: a tiered store for AI-agent memories (DESIGN.md §3).
export { MemoryStore, open } from './store.js';
export { TierStoreError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type {
  CompactionReport,
  GetOptions,
  IterateOptions,
  ListOptions,
  ListPage,
  Memory,
  MemoryBatch,
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
} from './types.js';
