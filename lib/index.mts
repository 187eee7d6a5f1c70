// ESM entry: re-exports the CommonJS build, so `import` and `require` share
// one module instance (one addon load, one TierStoreError class).
export { MemoryStore, open, TierStoreError } from './index.js';
export type * from './index.js';
