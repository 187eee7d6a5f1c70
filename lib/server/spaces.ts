/**
 * Memory spaces of the HTTP server: which store a request works on.
 *
 * A request names its space with the `X-Memory-Space` header (no header: the
 * space `default`). Two sources of stores:
 * - SingleSpace (`--dir` / a given store): one store, the space `default`;
 *   any other space does not exist.
 * - RootSpaces (`--root DIR`): one store per space in DIR/NAME, created by the
 *   first write to it. Open stores are kept in an LRU of at most
 *   `maxOpen`: a store is closed (cleanly) to make room only when no request
 *   holds it, so the bound is exceeded while every open store is busy and
 *   comes back as soon as they are released.
 *
 * Space names are 1–64 characters of `A–Z a–z 0–9 . _ -`, not starting with
 * `.`: never a path separator, never `.` or `..`, so DIR/NAME is always a
 * direct child of DIR. Names starting with `.` are free for the server's own
 * use (a deleted space is renamed to `.deleted-…` before it is removed, so a
 * crash mid-removal leaves either the whole space or no space).
 *
 * Opening and closing a store are synchronous calls, so each state change
 * (open, evict, remove) happens within one turn of the event loop; only a
 * deletion waits, for the requests that hold the space to finish, and new
 * requests for that space wait for the deletion.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { TierStoreError } from '../errors.js';
import { open, type MemoryStore } from '../store.js';
import type { OpenOptions, TierCounts } from '../types.js';
import { DEFAULT_MAX_CONTENT_BYTES } from '../validate.js';
import { HttpError } from './errors.js';

export const SPACE_HEADER = 'x-memory-space';
export const DEFAULT_SPACE = 'default';
export const DEFAULT_MAX_OPEN_SPACES = 64;
export const MAX_SPACE_NAME_LENGTH = 64;

const SPACE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
/** Prefix of a deleted space's directory while it is being removed. */
const DELETED_PREFIX = '.deleted-';

/** Whether `name` is a valid space name. */
export function isSpaceName(name: unknown): name is string {
  return typeof name === 'string' && SPACE_NAME.test(name);
}

/** `name` if it is a valid space name, else a 400 naming `where` (the header or the path). */
export function checkSpaceName(name: unknown, where: string): string {
  if (isSpaceName(name)) return name;
  const shown = typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name) : String(name);
  throw new HttpError(400, 'INVALID_ARGUMENT',
    `${where} must be a space name of 1 to ${MAX_SPACE_NAME_LENGTH} characters from A-Z a-z 0-9 . _ - ` +
      `not starting with '.', got ${shown}`);
}

/** A request's hold on a space's store: the store stays open until release(). */
export interface Lease {
  readonly store: MemoryStore;
  /** Records that a write to the space succeeded (the space it created stays). */
  commit(): void;
  /** Idempotent. */
  release(): void;
}

export interface SpaceInfo {
  name: string;
  open: boolean;
  /** Undefined when the space's store could not be opened (see error). */
  counts?: TierCounts;
  /** Why the store could not be opened to count it (damaged, locked by another process). */
  error?: { code: string; message: string };
}

/** Where a server's stores come from. */
export interface Spaces {
  readonly mode: 'dir' | 'root';
  /** Dimensions of a new space (dir mode: the store's). */
  readonly dimensions: number;
  readonly maxContentBytes: number;
  readonly readOnly: boolean;
  /** Most stores kept open when idle. */
  readonly maxOpen: number;
  /**
   * A lease on the store of `name`; undefined when the space does not exist
   * and `create` is false (or spaces cannot be created here).
   */
  acquire(name: string, create: boolean): Promise<Lease | undefined>;
  /** Closes the space's store and removes it; false when there is no such space. */
  remove(name: string): Promise<boolean>;
  /** Every space, by name (UTF-8 byte order = code unit order for these names). */
  list(): Promise<SpaceInfo[]>;
  openCount(): number;
  /** Closes every store this object opened. Idempotent. */
  close(): void;
}

function copyCounts(c: TierCounts): TierCounts {
  return { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
}

/** One store as the space `default` (--dir, or a store handed over by the host). */
export class SingleSpace implements Spaces {
  readonly mode = 'dir';
  readonly maxOpen = 1;

  constructor(
    readonly store: MemoryStore,
    private readonly owned: boolean,
  ) {}

  get dimensions(): number {
    return this.store.dimensions;
  }

  get maxContentBytes(): number {
    return this.store.maxContentBytes;
  }

  get readOnly(): boolean {
    return this.store.readOnly;
  }

  async acquire(name: string): Promise<Lease | undefined> {
    if (name !== DEFAULT_SPACE) return undefined;
    const store = this.store;
    return { store, commit() {}, release() {} };
  }

  async remove(name: string): Promise<boolean> {
    if (name !== DEFAULT_SPACE) return false;
    throw new HttpError(400, 'INVALID_ARGUMENT',
      'this server serves a single store (--dir), the space "default": it cannot be deleted over HTTP; ' +
        'serve a root of spaces (--root) to create and delete spaces');
  }

  async list(): Promise<SpaceInfo[]> {
    return [{ name: DEFAULT_SPACE, open: !this.store.closed, counts: copyCounts(this.store.counts()) }];
  }

  openCount(): number {
    return this.store.closed ? 0 : 1;
  }

  close(): void {
    if (this.owned) this.store.close();
  }
}

interface Entry {
  name: string;
  store: MemoryStore;
  /** Leases not released yet. */
  users: number;
  /** Opened by a write that created the space. */
  created: boolean;
  /** A write to it succeeded since (or it existed before). */
  committed: boolean;
  /** Woken when users drops to 0. */
  idle: (() => void)[];
}

export interface RootSpacesOptions {
  root: string;
  dimensions: number;
  maxOpen: number;
  storeOptions: OpenOptions;
  /** Told about a store that failed to close when evicted (its acknowledged writes are already on disk). */
  onCloseError?: (name: string, error: unknown) => void;
}

/** Whether `dir` holds a store (its manifest). */
function hasStore(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'MANIFEST')).isFile();
  } catch {
    return false;
  }
}

/** One store per space under a root directory, with an LRU of open stores. */
export class RootSpaces implements Spaces {
  readonly mode = 'root';
  readonly root: string;
  readonly dimensions: number;
  readonly maxOpen: number;
  readonly maxContentBytes: number;
  readonly readOnly: boolean;
  readonly #storeOptions: OpenOptions;
  readonly #onCloseError: (name: string, error: unknown) => void;
  /** Open stores, least recently used first. */
  readonly #entries = new Map<string, Entry>();
  /** Spaces being deleted: requests for them wait for this. */
  readonly #deleting = new Map<string, Promise<void>>();
  /**
   * Counts of closed spaces as this server last saw them (at eviction, or
   * when list() counted them): a listing opens only the spaces it has not
   * seen since it started. A space changed meanwhile by another process
   * shows its counts as of then.
   */
  readonly #closedCounts = new Map<string, TierCounts>();
  #closed = false;

  constructor(options: RootSpacesOptions) {
    this.root = path.resolve(options.root);
    this.dimensions = options.dimensions;
    this.maxOpen = options.maxOpen;
    const { dimensions: _ignored, ...storeOptions } = options.storeOptions;
    this.#storeOptions = storeOptions;
    this.maxContentBytes = storeOptions.maxContentBytes ?? DEFAULT_MAX_CONTENT_BYTES;
    this.readOnly = storeOptions.readOnly === true;
    this.#onCloseError = options.onCloseError ?? (() => {});
    if (fs.existsSync(this.root) && !fs.statSync(this.root).isDirectory()) {
      throw new TierStoreError('INVALID_ARGUMENT', `the root of the spaces is not a directory: ${this.root}`);
    }
    if (!this.readOnly) {
      fs.mkdirSync(this.root, { recursive: true });
      // Finish removals a previous process was cut off in.
      for (const name of fs.readdirSync(this.root)) {
        if (name.startsWith(DELETED_PREFIX)) fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
      }
    } else if (!fs.existsSync(this.root)) {
      throw new TierStoreError('INVALID_ARGUMENT', `no directory of spaces at ${this.root} to serve read-only`);
    }
  }

  #dir(name: string): string {
    // checkSpaceName ran first; this is the last line of defence against leaving the root.
    if (!isSpaceName(name)) throw new HttpError(400, 'INVALID_ARGUMENT', `invalid space name ${JSON.stringify(name)}`);
    return path.join(this.root, name);
  }

  #closing(): HttpError {
    return new HttpError(503, 'SERVER_CLOSING', 'the server is shutting down and takes no new requests');
  }

  async acquire(name: string, create: boolean): Promise<Lease | undefined> {
    for (;;) {
      if (this.#closed) throw this.#closing();
      const pending = this.#deleting.get(name);
      if (pending === undefined) break;
      await pending;
    }
    let entry = this.#entries.get(name);
    if (entry !== undefined) {
      // Most recently used goes last.
      this.#entries.delete(name);
      this.#entries.set(name, entry);
      entry.users++;
      return this.#lease(entry);
    }
    const dir = this.#dir(name);
    const exists = hasStore(dir);
    if (!exists) {
      if (!create) return undefined;
      if (this.readOnly) {
        throw new TierStoreError('READ_ONLY', `the space ${JSON.stringify(name)} does not exist and the spaces are served read-only`);
      }
    }
    this.#evictIdle(this.maxOpen - 1);
    const existed = fs.existsSync(dir);
    let store: MemoryStore;
    try {
      store = open(dir, exists ? this.#storeOptions : { ...this.#storeOptions, dimensions: this.dimensions });
    } catch (error) {
      // A failed creation leaves nothing behind.
      if (!existed) fs.rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    entry = { name, store, users: 1, created: !exists, committed: exists, idle: [] };
    this.#closedCounts.delete(name);
    this.#entries.set(name, entry);
    return this.#lease(entry);
  }

  #lease(entry: Entry): Lease {
    let released = false;
    return {
      store: entry.store,
      commit: () => {
        entry.committed = true;
      },
      release: () => {
        if (released) return;
        released = true;
        if (--entry.users > 0) return;
        for (const wake of entry.idle.splice(0)) wake();
        if (entry.created && !entry.committed && this.#entries.get(entry.name) === entry && !this.#deleting.has(entry.name)) {
          // Every write that would have created this space failed: as if it had never been asked for.
          this.#entries.delete(entry.name);
          this.#closeStore(entry);
          try {
            this.#removeDir(entry.name);
          } catch (error) {
            // Left as an empty space: it is listed, and a delete removes it.
            this.#onCloseError(entry.name, error);
          }
          return;
        }
        this.#evictIdle(this.maxOpen);
      },
    };
  }

  /** Closes least recently used idle stores until at most `limit` are open (or none idle is left). */
  #evictIdle(limit: number): void {
    if (this.#entries.size <= limit) return;
    for (const entry of [...this.#entries.values()]) {
      if (this.#entries.size <= limit) break;
      if (entry.users > 0) continue;
      this.#entries.delete(entry.name);
      this.#closeStore(entry);
    }
  }

  #closeStore(entry: Entry): void {
    try {
      if (entry.committed && !entry.store.closed) this.#closedCounts.set(entry.name, copyCounts(entry.store.counts()));
    } catch {
      this.#closedCounts.delete(entry.name);
    }
    try {
      entry.store.close();
    } catch (error) {
      this.#onCloseError(entry.name, error);
    }
  }

  /** Renames the space's directory out of the way (atomic), then removes it. */
  #removeDir(name: string): void {
    const dir = this.#dir(name);
    const trash = path.join(this.root, `${DELETED_PREFIX}${name}-${randomBytes(6).toString('hex')}`);
    try {
      fs.renameSync(dir, trash);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    try {
      fs.rmSync(trash, { recursive: true, force: true });
    } catch (error) {
      // The space is gone already (renamed out of the names); the next start removes what is left.
      this.#onCloseError(name, error);
    }
  }

  async remove(name: string): Promise<boolean> {
    for (;;) {
      if (this.#closed) throw this.#closing();
      const pending = this.#deleting.get(name);
      if (pending === undefined) break;
      await pending;
    }
    const entry = this.#entries.get(name);
    if (entry === undefined && !hasStore(this.#dir(name))) return false;
    if (this.readOnly) throw new TierStoreError('READ_ONLY', 'the spaces are served read-only: a space cannot be deleted');
    let done!: () => void;
    this.#deleting.set(name, new Promise<void>((resolve) => (done = resolve)));
    try {
      if (entry !== undefined) {
        if (entry.users > 0) await new Promise<void>((resolve) => entry.idle.push(resolve));
        if (this.#entries.get(name) === entry) this.#entries.delete(name);
        this.#closeStore(entry);
      }
      this.#removeDir(name);
    } finally {
      this.#closedCounts.delete(name);
      this.#deleting.delete(name);
      done();
    }
    return true;
  }

  async list(): Promise<SpaceInfo[]> {
    let names: string[];
    try {
      names = fs.readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && isSpaceName(d.name))
        .map((d) => d.name)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const out: SpaceInfo[] = [];
    for (const [i, name] of names.entries()) {
      // Let other requests run between spaces; each space is read within one turn.
      if (i > 0 && i % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) throw this.#closing();
      if (this.#deleting.has(name)) continue;
      const entry = this.#entries.get(name);
      if (entry !== undefined) {
        if (entry.created && !entry.committed) continue; // not acknowledged yet
        out.push({ name, open: true, counts: copyCounts(entry.store.counts()) });
        continue;
      }
      const dir = path.join(this.root, name);
      if (!hasStore(dir)) {
        this.#closedCounts.delete(name);
        continue;
      }
      const seen = this.#closedCounts.get(name);
      if (seen !== undefined) {
        out.push({ name, open: false, counts: copyCounts(seen) });
        continue;
      }
      // Counted without taking a place in the LRU (and without evicting anything).
      let store: MemoryStore;
      try {
        store = open(dir, this.#storeOptions);
      } catch (error) {
        // One damaged or locked space does not hide the others.
        const e = error as { code?: unknown; message?: unknown };
        out.push({ name, open: false, error: { code: typeof e.code === 'string' ? e.code : 'INTERNAL_ERROR', message: String(e.message ?? error) } });
        continue;
      }
      try {
        const counts = copyCounts(store.counts());
        this.#closedCounts.set(name, counts);
        out.push({ name, open: false, counts });
      } finally {
        store.close();
      }
    }
    return out;
  }

  openCount(): number {
    return this.#entries.size;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const errors: unknown[] = [];
    for (const entry of this.#entries.values()) {
      try {
        entry.store.close();
      } catch (error) {
        errors.push(error);
      }
    }
    this.#entries.clear();
    if (errors.length > 0) throw errors[0];
  }
}
