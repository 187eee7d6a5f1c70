// "Byte-for-byte unchanged" for the reliability-input suite: a fingerprint of
// a store directory (every file's size, inode, mtime and ctime in ns, and a
// SHA-256 of its content) plus everything the store shows (a full snapshot
// with embeddings and get()-visible access statistics, counts, the sequence
// number). Sequences of cases take a full fingerprint after flush() at both
// ends (access statistics held in memory are then on disk too) and a cheap
// one between cases.
//
// Warm files are whole chunks (4 MiB and more): hashing them on every case would cost up to ~0.4 s
// each, so `hashLarge: false` hashes only files up to 1 MiB and relies on
// size/inode/mtime/ctime for the rest — a write(2), ftruncate or a write
// fault on a clean mmap'd page (flush() msyncs them clean) updates mtime and
// ctime in the kernel. Callers take a full fingerprint (hashLarge: true) at
// the start and end of a sequence of cases, which proves the content too.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { MemoryStore } from '../../lib/index.js';
import { snapshot, type Snapshot } from './store.js';

const SMALL_FILE_BYTES = 1 << 20;

export interface FileState {
  size: string;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
  /** SHA-256 of the content; absent for large files when not asked for. */
  sha256?: string;
}

export interface StoreFingerprint {
  files: Record<string, FileState>;
  view: Snapshot;
  sequence: number;
}

/** The state of every file under `dir` (recursively), by relative path. */
export function directoryFiles(dir: string, hashLarge: boolean): Record<string, FileState> {
  const out: Record<string, FileState> = {};
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.join(sub, entry.name);
      if (entry.isDirectory()) {
        walk(rel);
        continue;
      }
      const full = path.join(dir, rel);
      const st = fs.statSync(full, { bigint: true });
      const state: FileState = {
        size: String(st.size),
        ino: String(st.ino),
        mtimeNs: String(st.mtimeNs),
        ctimeNs: String(st.ctimeNs),
      };
      if (hashLarge || st.size <= BigInt(SMALL_FILE_BYTES)) {
        state.sha256 = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
      }
      out[rel] = state;
    }
  };
  walk('');
  return out;
}

/**
 * The files of the store's directory and everything it shows. `flush`
 * first writes access statistics held in memory to disk (a bad call that
 * touched them then shows in the files too); without it the snapshot still
 * shows them, at no fsync cost.
 */
export function fingerprint(store: MemoryStore, options: { hashLarge?: boolean; flush?: boolean } = {}): StoreFingerprint {
  const hashLarge = options.hashLarge ?? false;
  if (options.flush ?? false) store.flush();
  const stats = store.stats() as unknown as { sequence: number };
  return { files: directoryFiles(path.resolve(store.path), hashLarge), view: snapshot(store), sequence: stats.sequence };
}
