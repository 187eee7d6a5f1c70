/**
 * Columnar export and import (issue 8): a tier (or all) of a store written to
 * Parquet, Arrow IPC or JSONL batch by batch, and read back the same way.
 * Interface first; implementation follows.
 */
import type { MemoryStore } from './store.js';
import type { TierSelector } from './types.js';
import { TierStoreError } from './errors.js';

export type ExportFormat = 'jsonl' | 'parquet' | 'arrow';

export interface ExportOptions {
  format: ExportFormat;
  /** Default 'all'. */
  tier?: TierSelector;
  /** Records per batch / row group; default 4096. */
  batchSize?: number;
  /** total = records in the selected tier(s) at the start. */
  onProgress?: (done: number, total: number) => void;
}

export interface ImportOptions {
  /** Default: from the file extension (.jsonl/.ndjson, .parquet, .arrow/.arrows/.ipc/.feather). */
  format?: ExportFormat;
  batchSize?: number;
  /** Default true: records return to the tier they were exported from. */
  keepTiers?: boolean;
  onProgress?: (done: number, total?: number) => void;
}

export function exportStore(
  _store: MemoryStore,
  _output: string | NodeJS.WritableStream,
  _options: ExportOptions,
): Promise<{ records: number; bytes: number }> {
  return Promise.reject(new TierStoreError('INVALID_ARGUMENT', 'exportStore: not implemented yet'));
}

export function importFile(_store: MemoryStore, _input: string, _options?: ImportOptions): Promise<{ records: number }> {
  return Promise.reject(new TierStoreError('INVALID_ARGUMENT', 'importFile: not implemented yet'));
}

export function formatFromPath(file: string): ExportFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.parquet')) return 'parquet';
  if (/\.(arrow|arrows|ipc|feather)$/.test(lower)) return 'arrow';
  return undefined;
}
