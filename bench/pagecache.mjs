// The page cache of one store's files: brought in (a warm reopen) or dropped
// (a cold one), and checked, so that a "cold" figure is only ever reported
// when the files really left the cache.
//
// Node has no fdatasync-by-path nor posix_fadvise, so GNU dd does both:
//   dd of=FILE oflag=nocache conv=notrunc,fdatasync count=0
// opens FILE for writing without truncating it, writes nothing, syncs its
// data and then asks the kernel to drop its cached pages (POSIX_FADV_DONTNEED);
// dirty pages cannot be dropped, hence the sync first. Whether the pages are
// gone is then read with fincore (util-linux); without it, from the fall of
// "Cached" in /proc/meminfo. On tmpfs and ramfs the cache is the storage, so
// nothing can be dropped and the cold figure is reported as not measured.

import { execFileSync } from 'node:child_process';
import { readdirSync, lstatSync, readFileSync, statfsSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';

// statfs f_type of file systems whose files live in the page cache itself.
const IN_MEMORY_FS = new Map([[0x01021994, 'tmpfs'], [0x858458f6, 'ramfs']]);

/** Every regular file under `dir`, with its size. */
export function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push({ path: p, size: st.size });
  }
  return out;
}

function has(cmd, args) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return undefined;
  }
}

/**
 * Whether the page cache of files under `dir` can be dropped by this process:
 * { ok, method, reason }. Cheap; run once per store directory.
 */
export function dropSupport(dir) {
  if (process.platform !== 'linux') return { ok: false, reason: `not Linux (${process.platform})` };
  let fsType;
  try {
    const t = statfsSync(dir).type;
    fsType = IN_MEMORY_FS.get(Number(t));
  } catch { /* statfs unavailable: the check after the drop still decides */ }
  // Named by the parent: every store directory of a run shares it, so the reason reads once.
  if (fsType) return { ok: false, reason: `${path.dirname(dir)} is on ${fsType}, whose files cannot leave the page cache` };
  const dd = has('dd', ['--version']);
  if (!dd || !/coreutils/i.test(dd)) return { ok: false, reason: 'GNU dd (coreutils) not found: nothing can call posix_fadvise' };
  const fincore = has('fincore', ['--version']) !== undefined;
  return { ok: true, method: fincore ? 'dd + fincore' : 'dd + /proc/meminfo' };
}

/** Bytes of `files` resident in the page cache (fincore), or undefined without it. */
export function residentBytes(files) {
  if (files.length === 0) return 0;
  let total = 0;
  // Batches keep the argument list short for stores with many files.
  for (let i = 0; i < files.length; i += 200) {
    const out = has('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', ...files.slice(i, i + 200).map((f) => f.path)]);
    if (out === undefined) return undefined;
    for (const line of out.split('\n')) if (line.trim()) total += Number(line.trim());
  }
  return Number.isFinite(total) ? total : undefined;
}

function cachedBytes() {
  const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Reads every file under `dir` once, so a reopen finds all of it in the page cache. */
export function warmFiles(dir) {
  const buf = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  for (const f of filesUnder(dir)) {
    const fd = openSync(f.path, 'r');
    try {
      for (let got; (got = readSync(fd, buf, 0, buf.length, null)) > 0;) bytes += got;
    } finally {
      closeSync(fd);
    }
  }
  return bytes;
}

/**
 * Syncs and drops the cached pages of every file under `dir` (the store must
 * be closed: pages mapped by a live process stay). Returns
 * { ok, files, bytes, residentAfter?, reason? }; ok only if the pages were
 * verifiably dropped.
 */
export function dropFiles(dir, support = dropSupport(dir)) {
  if (!support.ok) return { ok: false, reason: support.reason };
  const files = filesUnder(dir);
  const bytes = files.reduce((s, f) => s + f.size, 0);
  const viaMeminfo = support.method === 'dd + /proc/meminfo';
  // Without fincore the drop is judged by how much "Cached" falls, which
  // only means something if the files were all cached beforehand.
  let cachedBefore;
  if (viaMeminfo) {
    warmFiles(dir);
    cachedBefore = cachedBytes();
  }
  for (const f of files) {
    try {
      execFileSync('dd', [`of=${f.path}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none'], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      return { ok: false, files: files.length, bytes, reason: `dd on ${path.basename(f.path)} failed: ${String(e.stderr ?? e.message).trim().split('\n')[0]}` };
    }
  }
  // A few pages may stay (another reader, a page under writeback); more than
  // that and the reopen would not be cold.
  const tolerance = Math.max(256 << 10, bytes * 0.005);
  if (!viaMeminfo) {
    const resident = residentBytes(files);
    if (resident === undefined) return { ok: false, files: files.length, bytes, reason: 'fincore failed' };
    if (resident > tolerance) {
      return { ok: false, files: files.length, bytes, residentAfter: resident, reason: `${resident} of ${bytes} bytes still cached after posix_fadvise(DONTNEED)` };
    }
    return { ok: true, files: files.length, bytes, residentAfter: resident };
  }
  const fell = cachedBefore - cachedBytes();
  if (!(fell >= bytes * 0.9 - tolerance)) {
    return { ok: false, files: files.length, bytes, reason: `the page cache fell by ${fell} bytes, not by the files' ${bytes}` };
  }
  return { ok: true, files: files.length, bytes, cacheFell: fell };
}
