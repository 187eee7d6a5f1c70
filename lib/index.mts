// ESM entry: re-exports the CommonJS build, so `import` and `require` share
// one module instance (one addon load, one TierStoreError class).
import tierstore from './index.js';

export { MemoryStore, open, TierStoreError } from './index.js';
export type * from './index.js';
/** The whole API as one object (`import tierstore from 'tierstore'`). */
export default tierstore;
