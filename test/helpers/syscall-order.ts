// Power-loss ordering, checked on a syscall trace (strace -f -y) of a process
// using a store with durability 'sync'. A power cut keeps only what reached
// the disk: data a process wrote but never fsynced, and renames whose
// directory was never fsynced, may vanish. Killing processes (the crash
// suites) cannot show that; the order of writes, syncs, renames and unlinks
// can. The rules below are what the 'sync' guarantee (docs/durability.md)
// needs of them:
//
//   commit      when an operation returns, every store file it wrote is
//               synced after its last write (fsync, fdatasync or msync);
//   replace     a file renamed into place was synced after its last write;
//   dir         a rename is followed by an fsync of the store directory
//               before the operation returns;
//   checkpoint  the hot log is replaced (records that moved down leave it)
//               only after warm.blocks, the live warm-var file and every live
//               cold segment were synced in the same operation;
//   unlink      a cold segment is unlinked only after, in the same
//               operation, a MANIFEST that no longer lists it was renamed in
//               and its directory synced; a warm-var file only after
//               warm.blocks (which points at its successor) was synced.
//   mapped      writes through a shared mapping (MAP_SHARED, PROT_WRITE) of a
//               store file: when an operation returns, no such mapping of the
//               hot log (the commit point: records appended through a mapping)
//               or of any other file that is not tier data has dirty pages;
//               when an operation replaced the hot log (a checkpoint), no
//               mapping of tier data (warm.blocks, warm-var, cold segments)
//               has dirty pages either. Between checkpoints tier data may be
//               written through mappings without a sync: the records are
//               still in the synced log.
//
// Operations are delimited by markers the traced script writes to a marker
// file ("@@name@@"). Writes through a shared mapping are invisible to strace,
// so after each operation returns the traced script also writes, per shared
// writable mapping of a store file, "@@mapped=<file>@@" and, when that
// mapping has dirty pages (Shared_Dirty + Private_Dirty in /proc/self/smaps;
// msync(MS_SYNC) or an fsync of the file cleans them), "@@dirty=<file>@@".
// The store must be on a file system that writes pages back (not tmpfs,
// whose pages stay dirty).
import path from 'node:path';

export type Event =
  | { kind: 'marker'; name: string; line: number }
  | { kind: 'write'; path: string; line: number }
  | { kind: 'sync'; path: string; line: number }
  | { kind: 'rename'; from: string; to: string; line: number }
  | { kind: 'unlink'; path: string; line: number }
  | { kind: 'open'; path: string; line: number }
  /** After an operation returned: a shared writable mapping of `path` exists, with dirty pages or not. */
  | { kind: 'mapped'; path: string; dirty: boolean; line: number };

const TRACED = [
  'openat', 'write', 'pwrite64', 'pwritev', 'pwritev2', 'writev', 'fsync', 'fdatasync', 'msync',
  'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'mmap', 'munmap',
];
/** The strace arguments that record what parseTrace reads. */
export const STRACE_ARGS = ['-f', '-y', '-qq', '-s', '64', '-e', `trace=${TRACED.join(',')}`];

interface Mapping { start: bigint; end: bigint; path: string }

/** The events of a strace -f -y trace that touch `storeDir` or `markerFile`. */
export function parseTrace(text: string, storeDir: string, markerFile: string): Event[] {
  const pending = new Map<string, string>();
  const maps: Mapping[] = [];
  const events: Event[] = [];
  const inStore = (p: string) => p === storeDir || path.dirname(p) === storeDir;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n]!;
    const m = /^(\d+)\s+(.*)$/.exec(line);
    let pid = '';
    if (m) {
      pid = m[1]!;
      line = m[2]!;
    }
    // A call interrupted by another thread's: join its two halves.
    const unfinished = / <unfinished \.\.\.>$/.exec(line);
    if (unfinished) {
      pending.set(pid, line.slice(0, unfinished.index));
      continue;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (resumed) {
      const head = pending.get(pid);
      pending.delete(pid);
      if (head === undefined) continue;
      line = head + resumed[2]!;
    }
    const call = /^(\w+)\((.*)\)\s+=\s+(-?\w+)/.exec(line);
    if (!call) continue;
    const [, name, args, result] = call as unknown as [string, string, string, string];
    if (result.startsWith('-')) continue; // failed calls change nothing
    const fdPath = /^(?:\d+|AT_FDCWD)<([^>]*)>/.exec(args)?.[1];
    const quoted = [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((q) => q[1]!);
    switch (name) {
      case 'write': case 'pwrite64': case 'pwritev': case 'pwritev2': case 'writev':
        if (fdPath === markerFile) {
          const marker = /@@([\w:-]+)@@/.exec(args);
          const mapped = /@@(mapped|dirty)=([^@"]+)@@/.exec(args);
          if (marker) events.push({ kind: 'marker', name: marker[1]!, line: n });
          else if (mapped) events.push({ kind: 'mapped', path: path.join(storeDir, mapped[2]!), dirty: mapped[1] === 'dirty', line: n });
        } else if (fdPath !== undefined && inStore(fdPath)) {
          events.push({ kind: 'write', path: fdPath, line: n });
        }
        break;
      case 'fsync': case 'fdatasync':
        if (fdPath !== undefined && inStore(fdPath)) events.push({ kind: 'sync', path: fdPath, line: n });
        break;
      case 'msync': {
        const [addr, len] = args.split(',').map((s) => s.trim());
        const start = BigInt(addr!);
        const end = start + BigInt(len!);
        for (const map of maps) {
          if (map.start < end && start < map.end) events.push({ kind: 'sync', path: map.path, line: n });
        }
        break;
      }
      case 'mmap': {
        const fd = /MAP_SHARED[^,]*, \d+<([^>]*)>/.exec(args)?.[1];
        if (fd !== undefined && inStore(fd)) {
          const len = BigInt(args.split(',')[1]!.trim());
          const start = BigInt(result);
          maps.push({ start, end: start + len, path: fd });
        }
        break;
      }
      case 'munmap': {
        const [addr, len] = args.split(',').map((s) => s.trim());
        const start = BigInt(addr!);
        const end = start + BigInt(len!);
        for (let i = maps.length - 1; i >= 0; i--) {
          if (maps[i]!.start < end && start < maps[i]!.end) maps.splice(i, 1);
        }
        break;
      }
      case 'rename': case 'renameat': case 'renameat2':
        if (quoted.length >= 2 && inStore(quoted[1]!)) {
          events.push({ kind: 'rename', from: quoted[0]!, to: quoted[1]!, line: n });
        }
        break;
      case 'unlink': case 'unlinkat':
        if (quoted.length >= 1 && inStore(quoted[0]!)) events.push({ kind: 'unlink', path: quoted[0]!, line: n });
        break;
      case 'openat':
        if (quoted.length >= 1 && inStore(quoted[0]!)) events.push({ kind: 'open', path: quoted[0]!, line: n });
        break;
    }
  }
  return events;
}

export interface OrderReport {
  violations: string[];
  /** How often each rule had something to check (a rule never exercised proves nothing). */
  exercised: Record<'commit' | 'replace' | 'dir' | 'checkpoint' | 'unlink' | 'mapped', number>;
}

/**
 * Checks the rules above on `events`. The operation marked "create" makes the
 * store: its rename of hot.log is the log's creation, not a checkpoint.
 */
export function checkPowerLossOrder(events: Event[], storeDir: string): OrderReport {
  const violations: string[] = [];
  const exercised = { commit: 0, replace: 0, dir: 0, checkpoint: 0, unlink: 0, mapped: 0 };
  const base = (p: string) => path.basename(p);
  const lastWrite = new Map<string, number>();
  const lastSync = new Map<string, number>();
  const live = new Set<string>();  // data files that exist (cold segments, warm files)
  let op = '(before the first marker)';
  let opStart = -1;
  let pendingDirSync: Array<{ rename: string; line: number }> = [];
  const hotLog = path.join(storeDir, 'hot.log');
  const isData = (p: string) => /^(cold-\d+\.seg|warm\.blocks|warm-var-\d+\.dat)$/.test(base(p));
  // All sync lines per path, for "synced within this operation, before line L".
  const syncLines = new Map<string, number[]>();
  const syncedSince = (p: string, since: number, before: number) =>
    (syncLines.get(p) ?? []).some((l) => l > since && l < before);
  let manifestListedAt = -1;  // a MANIFEST rename in this operation, followed by a dir sync
  // Whether the current operation replaced the hot log. The mapping reports
  // of an operation come after it returned, before the next marker.
  let checkpointed = false;

  const endOp = (line: number) => {
    for (const [p, w] of lastWrite) {
      exercised.commit++;
      const s = lastSync.get(p);
      if (s === undefined || s < w) violations.push(`commit: ${op} returned with ${base(p)} written (trace line ${w + 1}) but not synced`);
    }
    for (const r of pendingDirSync) {
      violations.push(`dir: ${op} returned after renaming ${r.rename} (trace line ${r.line + 1}) without syncing the directory`);
    }
    pendingDirSync = [];
    lastWrite.clear();
    opStart = line;
    manifestListedAt = -1;
    checkpointed = false;
  };
  for (const e of events) {
    switch (e.kind) {
      case 'marker':
        endOp(e.line);
        op = e.name;
        break;
      case 'open':
        if (isData(e.path)) live.add(e.path);
        break;
      case 'mapped': {
        if (!e.dirty) {
          exercised.mapped++;  // one report per mapping; a dirty one adds a second
          break;
        }
        if (!isData(e.path)) {
          violations.push(`mapped: ${op} returned with ${base(e.path)} written through a shared mapping and not synced (dirty pages, no msync)`);
        } else if (checkpointed) {
          violations.push(`mapped: ${op} replaced hot.log but returned with ${base(e.path)} written through a shared mapping and not synced (dirty pages, no msync)`);
        }
        break;
      }
      case 'write':
        lastWrite.set(e.path, e.line);
        break;
      case 'sync': {
        lastSync.set(e.path, e.line);
        if (!syncLines.has(e.path)) syncLines.set(e.path, []);
        syncLines.get(e.path)!.push(e.line);
        if (e.path === storeDir) {
          if (pendingDirSync.some((r) => base(r.rename) === 'MANIFEST')) manifestListedAt = e.line;
          exercised.dir += pendingDirSync.length;
          pendingDirSync = [];
        }
        break;
      }
      case 'rename': {
        exercised.replace++;
        const w = lastWrite.get(e.from);
        const s = lastSync.get(e.from);
        if (w !== undefined && (s === undefined || s < w)) {
          violations.push(`replace: ${op} renamed ${base(e.from)} to ${base(e.to)} (trace line ${e.line + 1}) before syncing it`);
        }
        if (e.to === hotLog && op !== 'create') {
          exercised.checkpoint++;
          checkpointed = true;
          for (const p of live) {
            if (!syncedSince(p, opStart, e.line)) {
              violations.push(`checkpoint: ${op} replaced hot.log (trace line ${e.line + 1}) before syncing ${base(p)}`);
            }
          }
        }
        // The renamed file's state moves to its new name.
        if (w !== undefined) lastWrite.set(e.to, w);
        lastWrite.delete(e.from);
        if (s !== undefined) lastSync.set(e.to, s);
        live.delete(e.from);
        if (isData(e.to)) live.add(e.to);
        pendingDirSync.push({ rename: e.to, line: e.line });
        break;
      }
      case 'unlink': {
        if (/^cold-\d+\.seg$/.test(base(e.path))) {
          exercised.unlink++;
          if (manifestListedAt < 0) {
            violations.push(`unlink: ${op} unlinked ${base(e.path)} (trace line ${e.line + 1}) before a MANIFEST without it was renamed in and its directory synced`);
          }
        } else if (/^warm-var-\d+\.dat$/.test(base(e.path))) {
          exercised.unlink++;
          if (!syncedSince(path.join(storeDir, 'warm.blocks'), opStart, e.line)) {
            violations.push(`unlink: ${op} unlinked ${base(e.path)} (trace line ${e.line + 1}) before syncing warm.blocks`);
          }
        }
        live.delete(e.path);
        lastWrite.delete(e.path);
        break;
      }
    }
  }
  endOp(Number.MAX_SAFE_INTEGER);
  return { violations, exercised };
}

/**
 * JavaScript for a traced script (a CommonJS file with `fs` and `path`
 * loaded): defines reportMappings(marker, storeDir), which writes the
 * "@@mapped=<file>@@" and "@@dirty=<file>@@" reports described above for
 * every shared writable mapping of a file of storeDir, read from
 * /proc/self/smaps. Call it just before writing each operation's marker.
 */
export const REPORT_MAPPINGS_JS = String.raw`
function reportMappings(marker, storeDir) {
  let cur = null;
  const files = new Map();
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const h = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s+(.*)$/.exec(line);
    if (h) {
      cur = null;
      if (path.dirname(h[2]) === storeDir && h[1][1] === 'w' && h[1][3] === 's') {
        cur = path.basename(h[2]);
        if (!files.has(cur)) files.set(cur, 0);
      }
      continue;
    }
    const d = /^(?:Shared|Private)_Dirty:\s+(\d+) kB/.exec(line);
    if (d && cur !== null) files.set(cur, files.get(cur) + Number(d[1]));
  }
  for (const [file, dirtyKiB] of files) {
    fs.writeSync(marker, '@@mapped=' + file + '@@');
    if (dirtyKiB > 0) fs.writeSync(marker, '@@dirty=' + file + '@@');
  }
}
`;
