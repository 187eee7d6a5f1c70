// Damaged-file fuzzing, the JavaScript side (docs/durability.md).
//
//   node scripts/stress/damage.mjs --cases 2000 --seed 1        (or --seconds 600)
//   node scripts/stress/damage.mjs --seed 1 --case 137 --keep   (reproduce one case, keep its store)
//
// Builds reference stores in child processes — 'clean-tiers' (records in all
// three tiers, several cold segments, deletions, compacted, closed cleanly),
// 'clean-skipwarm' (3 dimensions, hot straight to cold, deletion bitmap in
// use) and 'killed' (SIGKILLed with the store open after a known sequence of
// logged writes) — each with the exact records it must hold (from its inputs).
// Then, case by case, a worker child (damage-worker.mjs) copies a reference,
// applies one random mutation — truncation, bit flips, a zeroed 4 KiB page,
// appended garbage, a file removed or emptied, two files swapped, a region
// copied over another (a misdirected write), a file replaced by another
// store's, a duplicated or renamed cold segment, a stray file, a bit of a log
// entry header (the 'killed' store's entry starts are known), damage aimed at
// the persisted id index (id.index truncated, flipped, zeroed, removed,
// emptied, another store's, or the one an earlier clean close of the same
// store wrote), damage aimed at a cold segment's filter file (the same
// kinds, or the filter file of another segment in its place), or two of
// these at once — opens the copy and reads everything
// (see the worker). Case i is chosen by (seed, i) alone, so it can be replayed.
//
// Each case must end in one of:
//   - all data correct: every record exactly as written (access statistics
//     excluded: they are best-effort and by design not checksummed), nothing
//     extra, every read path agreeing (tiers, get/has, recall, list, counts),
//     and after a write + migrate + compact the same data plus the new record;
//   - a TierStoreError with code CORRUPTION or IO_ERROR whose message names
//     the damaged file (an open that fails must not modify any file) —
//     except when only derived files were damaged (the id index, warm.filter,
//     cold filter files): their answers must be exact; and when only the id
//     index was damaged: the index is rebuilt from
//     the data, so then only the first outcome is right, and after a clean
//     close an index whose bytes changed (other than by appended bytes) must
//     have been rebuilt (stats().indexRebuilt), never used;
//   - only for the 'killed' store, whose log tail may be torn by a crash:
//     a damaged log tail dropped (stats().tornLogBytes > 0), where only
//     records written by the dropped entries may be missing or at an older
//     version, and no intact entry after the damaged bytes was dropped.
// Anything else is a finding: another error code or type, an error not
// naming the file, a record missing, altered or extra without an error, a
// hang, or the reading process dying by a signal.
//
// Findings explained by a diagnosed engine issue (KNOWN_ISSUES below) are
// counted apart as knownIssues; --strict makes them findings again.
//
// The last line is `SUMMARY {"name":"damage",...}`; exit status 1 on findings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  digestDifference,
  isMain,
  LineChild,
  mixSeed,
  mulberry32,
  parseArgs,
  pick,
  pickWeighted,
  printSummary,
  randInt,
  STRESS_DIR,
} from './common.mjs';

const WORKER = path.join(STRESS_DIR, 'damage-worker.mjs');
export const INDEX_FILE = 'id.index';
// Derived from the data, like the index: damage to it alone must leave every answer right.
export const FILTER_FILE = 'warm.filter';
// The same for each cold segment's filter file, cold-<id>.filter (docs/format/cold-filter.md).
export const COLD_FILTER = /^cold-[0-9a-f]{8}\.filter/;
const isDerived = (name) => name.startsWith(INDEX_FILE) || name.startsWith(FILTER_FILE) || COLD_FILTER.test(name);
export const REFERENCE_KINDS = ['clean-tiers', 'clean-skipwarm', 'killed'];
const PAGE = 4096;
const TIERS = ['hot', 'warm', 'cold'];

// ---------------------------------------------------------------------------
// Store images: a store's files held in memory as their non-zero pages (the
// warm block file is whole chunks, mostly unwritten), written back sparsely.

export function loadImage(dir) {
  const files = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === 'LOCK') continue;
    const bytes = fs.readFileSync(path.join(dir, name));
    const pages = [];
    for (let p = 0; p * PAGE < bytes.length; p++) {
      const page = bytes.subarray(p * PAGE, Math.min(bytes.length, (p + 1) * PAGE));
      if (page.some((b) => b !== 0)) pages.push([p, Buffer.from(page)]);
    }
    files.push({ name, size: bytes.length, pages });
  }
  return { files };
}

function writeSparse(file, size, pages) {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    for (const [p, buf] of pages) fs.writeSync(fd, buf, 0, buf.length, p * PAGE);
  } finally {
    fs.closeSync(fd);
  }
}

export function materialize(image, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of image.files) writeSparse(path.join(dir, f.name), f.size, f.pages);
  fs.writeFileSync(path.join(dir, 'LOCK'), '');
}

/**
 * Where the log's entries end: its size, or, for a log (version 3 to 5) whose end
 * mark is on (relaxed appends go through a mapping of a file extended ahead),
 * the mark when it lies within the file. Torn-tail judging counts from here.
 */
export function logEnd(file) {
  const size = fs.statSync(file).size;
  if (size < 40) return size;
  const fd = fs.openSync(file, 'r');
  try {
    const h = Buffer.alloc(40);
    fs.readSync(fd, h, 0, 40, 0);
    const version = h.readUInt32LE(8);
    if (version < 3 || version > 5) return size;
    const end = Number(h.readBigUInt64LE(32) & 0xffffffffffffn);
    return end !== 0 && end <= size ? end : size;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// Mutations

/** An offset in the file, usually inside a page that holds data. */
function dataOffset(rng, f) {
  if (f.size === 0) return 0;
  if (f.pages.length > 0 && rng() < 0.85) {
    const [p] = pick(rng, f.pages);
    return Math.min(f.size - 1, p * PAGE + randInt(rng, 0, PAGE - 1));
  }
  return randInt(rng, 0, f.size - 1);
}

function dataEnd(f) {
  if (f.pages.length === 0) return 0;
  return Math.min(f.size, (f.pages[f.pages.length - 1][0] + 1) * PAGE);
}

const MUTATION_WEIGHTS = {
  truncate: 15, flipBits: 26, zeroPage: 11, appendGarbage: 8, removeFile: 6, emptyFile: 4, swapFiles: 5,
  copyRegion: 10, foreignFile: 4, duplicateSegment: 3, renameFile: 2, strayFile: 2, double: 6, flipLogHeader: 3,
  damageIndex: 10, damageColdFilter: 6,
};
// How damageIndex damages id.index: the file-level mutations above aimed at it, or the index of an earlier clean close.
const INDEX_DAMAGE_WEIGHTS = { truncate: 3, flipBits: 5, zeroPage: 2, removeFile: 1, emptyFile: 1, appendGarbage: 1, foreignFile: 2, copyRegion: 1, earlierIndex: 3 };
// How damageColdFilter damages a cold segment's filter file: the file-level mutations aimed at it, or
// the filter file of another segment of the same store put in its place (a file made for another segment).
const COLD_FILTER_DAMAGE_WEIGHTS = { truncate: 3, flipBits: 5, zeroPage: 2, removeFile: 2, emptyFile: 1, appendGarbage: 1, foreignFile: 1, copyRegion: 1, otherSegments: 3 };
// hot.log: a file header (its size is measured by the 'killed' build), then entries of crc u32, type u8, pad, length u64, payload.

function oneMutation(rng, ref, refs, kind, forcedFile) {
  const files = ref.image.files;
  const f = forcedFile ?? pick(rng, files);
  const m = { kind, file: f.name, files: [f.name] };
  switch (kind) {
    case 'truncate': {
      const r = rng();
      const end = dataEnd(f);
      m.size = r < 0.35 ? randInt(rng, 0, Math.max(0, f.size - 1)) : r < 0.6 ? Math.max(0, f.size - randInt(rng, 1, 64)) : randInt(rng, 0, Math.max(0, end - 1));
      m.size = Math.min(m.size, Math.max(0, f.size - 1));
      m.damage = [m.size, f.size - 1];
      m.description = `truncate ${f.name} ${f.size} → ${m.size} bytes`;
      break;
    }
    case 'flipBits': {
      const n = rng() < 0.7 ? randInt(rng, 1, 3) : randInt(rng, 4, 64);
      const near = rng() < 0.5; // clustered flips (a damaged sector) or scattered ones
      const first = dataOffset(rng, f);
      m.bits = Array.from({ length: n }, () => {
        const at = near ? Math.min(f.size - 1, first + randInt(rng, 0, 511)) : dataOffset(rng, f);
        return [Math.max(0, at), randInt(rng, 0, 7)];
      });
      if (f.size === 0) m.bits = [];
      m.damage = m.bits.length ? [Math.min(...m.bits.map((b) => b[0])), Math.max(...m.bits.map((b) => b[0]))] : null;
      m.description = `flip ${m.bits.length} bits of ${f.name} at ${m.bits.slice(0, 6).map(([o, b]) => `${o}.${b}`).join(' ')}${m.bits.length > 6 ? ' …' : ''}`;
      break;
    }
    case 'zeroPage': {
      const p = f.pages.length > 0 && rng() < 0.85 ? pick(rng, f.pages)[0] : randInt(rng, 0, Math.max(0, Math.ceil(f.size / PAGE) - 1));
      m.page = p;
      m.damage = [p * PAGE, Math.min(f.size, (p + 1) * PAGE) - 1];
      m.description = `zero the 4 KiB page ${p} of ${f.name} (${f.size} bytes)`;
      break;
    }
    case 'appendGarbage': {
      m.length = rng() < 0.5 ? randInt(rng, 1, 64) : randInt(rng, 65, 9000);
      m.style = pickWeighted(rng, { random: 5, zeros: 2, ownBytes: 3 });
      m.from = m.style === 'ownBytes' && f.size > 0 ? randInt(rng, 0, f.size - 1) : 0;
      m.garbageSeed = randInt(rng, 0, 2 ** 31);
      m.damage = [f.size, f.size + m.length - 1];
      m.description = `append ${m.length} ${m.style} bytes to ${f.name}`;
      break;
    }
    case 'removeFile':
      m.description = `remove ${f.name}`;
      break;
    case 'emptyFile':
      m.damage = [0, f.size];
      m.description = `truncate ${f.name} to 0 bytes`;
      break;
    case 'swapFiles': {
      const others = files.filter((g) => g.name !== f.name);
      if (others.length === 0) return oneMutation(rng, ref, refs, 'flipBits');
      const g = pick(rng, others);
      m.other = g.name;
      m.files = [f.name, g.name];
      m.description = `swap the contents of ${f.name} and ${g.name}`;
      break;
    }
    case 'flipLogHeader': {
      // Structure-aware: a bit of an entry header (checksum, type or length) in
      // the 'killed' store's log, whose entry starts are known from its build.
      if (!ref.log) return oneMutation(rng, ref, refs, 'flipBits');
      const starts = [ref.log.header, ...ref.log.offsets.slice(0, -1)];
      const start = pick(rng, starts);
      const at = start + (rng() < 0.7 ? randInt(rng, 8, 15) : randInt(rng, 0, 7));
      m.file = LOG_FILE;
      m.files = [LOG_FILE];
      m.bits = [[at, randInt(rng, 0, 7)]];
      m.damage = [at, at];
      m.description = `flip bit ${m.bits[0][1]} of byte ${at} of hot.log (the header of the entry at ${start})`;
      break;
    }
    case 'copyRegion': {
      if (f.size < 32) return oneMutation(rng, ref, refs, 'truncate');
      m.length = Math.min(f.size, rng() < 0.5 ? randInt(rng, 8, 256) : randInt(rng, 257, 8192));
      m.from = Math.min(dataOffset(rng, f), f.size - m.length);
      m.to = Math.min(dataOffset(rng, f), f.size - m.length);
      m.damage = [m.to, m.to + m.length - 1];
      m.description = `copy ${m.length} bytes of ${f.name} from ${m.from} over ${m.to}`;
      break;
    }
    case 'foreignFile': {
      const other = pick(rng, refs.filter((r) => r.kind !== ref.kind));
      const same = other.image.files.find((g) => g.name === f.name);
      const g = same ?? pick(rng, other.image.files);
      m.fromRef = other.kind;
      m.fromFile = g.name;
      m.description = `replace ${f.name} with ${g.name} of the '${other.kind}' store`;
      break;
    }
    case 'duplicateSegment':
    case 'renameFile': {
      const segs = files.filter((g) => /^cold-.*\.seg$/.test(g.name));
      const src = segs.length > 0 ? pick(rng, segs) : f;
      m.file = src.name;
      m.newName = /^cold-.*\.seg$/.test(src.name) ? `cold-${randInt(rng, 0x100, 0xfff).toString(16).padStart(8, '0')}.seg` : `${src.name}.old`;
      if (kind === 'renameFile' && rng() < 0.4) {
        const g = pick(rng, files);
        m.file = g.name;
        m.newName = g.name.startsWith('warm-var-') ? 'warm-var-99.dat' : g.name + '~';
      }
      m.files = [m.file, m.newName];
      m.description = kind === 'renameFile' ? `rename ${m.file} to ${m.newName}` : `copy ${m.file} to a new segment ${m.newName}`;
      break;
    }
    case 'damageIndex': {
      const index = files.find((g) => g.name === INDEX_FILE);
      if (!index) return oneMutation(rng, ref, refs, 'flipBits');
      const how = pickWeighted(rng, INDEX_DAMAGE_WEIGHTS);
      if (how === 'earlierIndex') {
        if (!ref.earlierIndex) return oneMutation(rng, ref, refs, 'flipBits', index);
        return { kind: 'earlierIndex', ref: ref.kind, file: INDEX_FILE, files: [INDEX_FILE], via: kind, description: `replace ${INDEX_FILE} with the one an earlier clean close of the same store wrote` };
      }
      return { ...oneMutation(rng, ref, refs, how, index), via: kind };
    }
    case 'damageColdFilter': {
      const filters = files.filter((g) => COLD_FILTER.test(g.name));
      if (filters.length === 0) return oneMutation(rng, ref, refs, 'flipBits');
      const target = pick(rng, filters);
      const how = pickWeighted(rng, COLD_FILTER_DAMAGE_WEIGHTS);
      const others = filters.filter((g) => g !== target);
      if (how === 'otherSegments' && others.length > 0) {
        const src = pick(rng, others);
        return { kind: 'copyFile', from: src.name, file: target.name, files: [target.name], via: kind, description: `replace ${target.name} with ${src.name}, the filter file of another segment` };
      }
      return { ...oneMutation(rng, ref, refs, how === 'otherSegments' ? 'flipBits' : how, target), via: kind };
    }
    case 'strayFile':
      m.newName = pick(rng, ['notes.txt', 'cold-.seg', 'hot.log.tmp', 'MANIFEST.tmp', 'warm-var-.dat']);
      m.files = [m.newName];
      m.description = `add a stray file ${m.newName}`;
      break;
    default:
      throw new Error(`unknown mutation ${kind}`);
  }
  return m;
}

/** The mutation of one case. Cases 0..refs.length-1 are undamaged baselines, one per reference. */
export function chooseMutation(rng, ref, refs) {
  const kind = pickWeighted(rng, MUTATION_WEIGHTS);
  if (kind !== 'double') return oneMutation(rng, ref, refs, kind);
  const a = oneMutation(rng, ref, refs, pick(rng, ['truncate', 'flipBits', 'zeroPage', 'appendGarbage', 'copyRegion']));
  const b = oneMutation(rng, ref, refs, pick(rng, ['flipBits', 'zeroPage', 'removeFile', 'truncate']));
  return { kind: 'double', parts: [a, b], files: [...a.files, ...b.files], file: a.file, description: `${a.description}; and ${b.description}` };
}

function garbage(m) {
  const rng = mulberry32(m.garbageSeed);
  const out = Buffer.alloc(m.length);
  if (m.style === 'random') for (let i = 0; i < out.length; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

export function applyMutation(dir, m, refs) {
  const file = m.file === undefined ? undefined : path.join(dir, m.file);
  const exists = file !== undefined && fs.existsSync(file);
  switch (m.kind) {
    case 'none':
      return;
    case 'double':
      for (const part of m.parts) applyMutation(dir, part, refs);
      return;
    case 'truncate':
      if (exists) fs.truncateSync(file, Math.min(m.size, fs.statSync(file).size));
      return;
    case 'flipBits':
    case 'flipLogHeader': {
      if (!exists) return;
      const fd = fs.openSync(file, 'r+');
      const size = fs.fstatSync(fd).size;
      const b = Buffer.alloc(1);
      for (const [at, bit] of m.bits) {
        if (at >= size) continue;
        fs.readSync(fd, b, 0, 1, at);
        b[0] ^= 1 << bit;
        fs.writeSync(fd, b, 0, 1, at);
      }
      fs.closeSync(fd);
      return;
    }
    case 'zeroPage': {
      if (!exists) return;
      const fd = fs.openSync(file, 'r+');
      const size = fs.fstatSync(fd).size;
      const start = m.page * PAGE;
      if (start < size) fs.writeSync(fd, Buffer.alloc(Math.min(PAGE, size - start)), 0, Math.min(PAGE, size - start), start);
      fs.closeSync(fd);
      return;
    }
    case 'appendGarbage': {
      if (!exists) return;
      let g = garbage(m);
      if (m.style === 'ownBytes') {
        const own = fs.readFileSync(file);
        g = Buffer.concat([own.subarray(m.from), own]).subarray(0, m.length);
      }
      fs.appendFileSync(file, g);
      return;
    }
    case 'removeFile':
      fs.rmSync(file, { force: true });
      return;
    case 'emptyFile':
      if (exists) fs.truncateSync(file, 0);
      return;
    case 'swapFiles': {
      const other = path.join(dir, m.other);
      if (!exists || !fs.existsSync(other)) return;
      const tmp = path.join(dir, '.swap');
      fs.renameSync(file, tmp);
      fs.renameSync(other, file);
      fs.renameSync(tmp, other);
      return;
    }
    case 'copyRegion': {
      if (!exists) return;
      const fd = fs.openSync(file, 'r+');
      const size = fs.fstatSync(fd).size;
      const len = Math.min(m.length, Math.max(0, size - Math.max(m.from, m.to)));
      const b = Buffer.alloc(len);
      fs.readSync(fd, b, 0, len, m.from);
      fs.writeSync(fd, b, 0, len, m.to);
      fs.closeSync(fd);
      return;
    }
    case 'foreignFile': {
      const other = refs.find((r) => r.kind === m.fromRef).image.files.find((g) => g.name === m.fromFile);
      writeSparse(file, other.size, other.pages);
      return;
    }
    case 'duplicateSegment':
      if (exists) fs.copyFileSync(file, path.join(dir, m.newName));
      return;
    case 'earlierIndex':
      fs.copyFileSync(refs.find((r) => r.kind === m.ref).earlierIndex, file);
      return;
    case 'copyFile':
      fs.copyFileSync(path.join(dir, m.from), file);
      return;
    case 'renameFile':
      if (exists) fs.renameSync(file, path.join(dir, m.newName));
      return;
    case 'strayFile':
      fs.writeFileSync(path.join(dir, m.newName), 'not part of the store\n');
      return;
    default:
      throw new Error(`unknown mutation ${m.kind}`);
  }
}

// ---------------------------------------------------------------------------
// Judging a case

const LOG_FILE = 'hot.log';
const TAIL_DAMAGE = new Set(['truncate', 'flipBits', 'flipLogHeader', 'zeroPage', 'appendGarbage', 'copyRegion']);

/**
 * For the 'killed' store only: when the engine dropped a damaged log tail,
 * the ids written by the dropped entries (they may be missing or at an older
 * version) and the problems (an intact entry after the damage dropped).
 */
function tornTailAllowance(ref, m, result) {
  const loose = new Set();
  const problems = [];
  const torn = result.obs.tornLogBytes;
  if (!(torn > 0)) return { loose, problems };
  if (ref.clean) {
    problems.push(`${torn} log bytes were dropped as a torn tail although the store had been closed cleanly`);
    return { loose, problems };
  }
  const logParts = partsOf(m).filter((p) => p.file === LOG_FILE && TAIL_DAMAGE.has(p.kind));
  if (logParts.length === 0) {
    // Only damage to the log itself can make a torn tail; anything else must not lose log entries.
    problems.push(`${torn} log bytes were dropped as a torn tail, but the damage was not in ${LOG_FILE}`);
    return { loose, problems };
  }
  const keptEnd = result.logSizeBefore - torn; // the engine kept entries up to here
  const damageEnd = Math.max(...logParts.map((p) => (p.damage ? p.damage[1] : -1)));
  const cutAt = Math.min(...logParts.map((p) => (p.kind === 'truncate' ? p.size : Infinity))); // bytes from here on are gone
  const { offsets, ops, hot0 } = ref.log;
  if (keptEnd < offsets[0]) for (const id of hot0) loose.add(id);
  for (let k = 1; k < offsets.length; k++) {
    if (offsets[k] > keptEnd) {
      for (const id of ops[k - 1]) loose.add(id);
      // An entry that starts after the last damaged byte, and still exists, was intact: dropping it silently loses an acknowledged write.
      if (offsets[k - 1] > damageEnd && offsets[k] <= cutAt && offsets[k - 1] >= keptEnd) {
        problems.push(
          `the intact acknowledged log entry at ${offsets[k - 1]}..${offsets[k]} (after the damage, which ends at ${damageEnd}) was dropped silently with the torn tail (kept ${keptEnd} of ${result.logSizeBefore} bytes)`,
        );
      }
    }
  }
  return { loose, problems: problems.slice(0, 1) };
}

/**
 * The MANIFEST is what the other files are checked against, so damage to it
 * shows as a disagreement that names the other file: any store file named is
 * enough then.
 */
function manifestDisagreement(names, message, ref) {
  return names.includes('MANIFEST') && (ref.files ?? []).some((f) => String(message).includes(f));
}

/**
 * Judges one case: returns { verdict: 'intact' | 'detected' | 'torn-tail', problems: string[] }.
 * `ref` is the reference's expectation ({ kind, clean, records, deleted, history, log }),
 * `m` the mutation, `result` what the worker reported.
 */
export function judgeCase(ref, m, result) {
  const problems = [];
  const names = (m.files ?? []).map((f) => path.basename(f));
  // Only the index, the warm filter entries or cold filter files (or a
  // renamed copy of them) damaged: the data is whole, so the answers must be.
  const indexOnly = names.length > 0 && names.every((n) => n.startsWith(INDEX_FILE));
  const derivedOnly = names.length > 0 && names.every(isDerived);
  if (!result.ok && derivedOnly) {
    const e = result.error ?? {};
    const canonical = (n) => (n.startsWith(INDEX_FILE) ? INDEX_FILE : n.startsWith(FILTER_FILE) ? FILTER_FILE : COLD_FILTER.exec(n)[0]);
    const what = [...new Set(names.map(canonical))].join(' and ');
    problems.push(`only ${what} was damaged, yet ${result.stage} failed with ${e.code ?? e.name}: ${e.message} (${indexOnly ? 'the index must be rebuilt' : 'it must be made again'} from the data)`);
    return { verdict: 'detected', problems };
  }
  if (!result.ok) {
    const e = result.error ?? {};
    if (!e.isTierStoreError) problems.push(`failed at ${result.stage} with a ${e.name}, not a TierStoreError: ${e.message}`);
    else if (e.code !== 'CORRUPTION' && e.code !== 'IO_ERROR') problems.push(`failed at ${result.stage} with code ${e.code} (want CORRUPTION or IO_ERROR): ${e.message}`);
    else if (m.kind === 'none') problems.push(`the undamaged store failed at ${result.stage}: ${e.code}: ${e.message}`);
    else if (!names.some((n) => String(e.message).includes(n)) && !manifestDisagreement(names, e.message, ref)) problems.push(`${e.code} at ${result.stage} does not name the damaged file (${names.join(' or ')}): ${JSON.stringify(e.message)}`);
    if (result.stage === 'open' && result.filesChangedByFailedOpen?.length > 0) {
      problems.push(`the open failed with ${e.code} but changed files: ${result.filesChangedByFailedOpen.join(', ')}`);
    }
    return { verdict: 'detected', problems };
  }
  const obs = result.obs;
  if (ref.clean && indexOnly && result.indexChanged && !partsOf(m).some((p) => p.kind === 'appendGarbage') && obs.indexRebuilt !== true) {
    problems.push(`${INDEX_FILE} was damaged after a clean close, yet the open did not rebuild it (indexRebuilt ${obs.indexRebuilt}, reason ${JSON.stringify(obs.indexRebuildReason)})`);
  }
  if (obs.filtered && JSON.stringify(obs.filtered.want) !== JSON.stringify(obs.filtered.got)) {
    problems.push(`a filtered recall disagrees with the records it iterated: want ${obs.filtered.want.length} ids, got ${obs.filtered.got.length} (${obs.filtered.got.filter((id) => !obs.filtered.want.includes(id)).slice(0, 3).join(', ')} extra, ${obs.filtered.want.filter((id) => !obs.filtered.got.includes(id)).slice(0, 3).join(', ')} missing)`);
  }
  const { loose, problems: tailProblems } = tornTailAllowance(ref, m, result);
  problems.push(...tailProblems);
  const history = ref.history ?? {};
  const seen = new Map();
  for (const [id, tier, digest] of obs.all) {
    if (seen.has(id)) problems.push(`id ${JSON.stringify(id)} yielded twice by iterate('all')`);
    seen.set(id, { tier, digest });
  }
  const lost = [];
  const altered = [];
  for (const [id, want] of Object.entries(ref.records)) {
    const got = seen.get(id)?.digest ?? null;
    if (got === want) continue;
    if (loose.has(id) && (got === null || (history[id] ?? []).includes(got))) continue;
    if (got === null) lost.push(id);
    else altered.push(`${id} (${digestDifference(got, want).join(', ')})`);
  }
  if (lost.length > 0) problems.push(`${lost.length} of ${Object.keys(ref.records).length} records silently missing, e.g. ${JSON.stringify(lost.slice(0, 5))}`);
  if (altered.length > 0) problems.push(`${altered.length} records silently altered, e.g. ${altered.slice(0, 3).join('; ')}`);
  const extra = [...seen.keys()].filter((id) => !(id in ref.records) && !(loose.has(id) && (history[id] ?? []).includes(seen.get(id).digest)));
  if (extra.length > 0) problems.push(`${extra.length} records that should not exist, e.g. ${JSON.stringify(extra.slice(0, 5))}`);
  // Every read path agrees with iteration.
  for (const t of TIERS) {
    const labelled = obs.all.filter((r) => r[1] === t).map((r) => r[0]).sort();
    const own = [...(obs.perTier[t] ?? [])].sort();
    if (labelled.join('\n') !== own.join('\n')) problems.push(`iterate({tier:'${t}'}) yields ${own.length} ids, iterate('all') labels ${labelled.length} as ${t}, and they differ`);
    if (obs.counts[t] !== labelled.length) problems.push(`counts().${t} = ${obs.counts[t]}, iteration has ${labelled.length}`);
    const listed = (obs.list?.[t] ?? []).map(([id, d]) => `${id}|${d}`).sort();
    const iterated = obs.all.filter((r) => r[1] === t).map((r) => `${r[0]}|${r[2]}`).sort();
    if (listed.join('\n') !== iterated.join('\n')) problems.push(`list({tier:'${t}'}) pages give ${listed.length} records that differ from iteration's ${iterated.length}`);
  }
  if (obs.counts.total !== obs.all.length) problems.push(`counts().total = ${obs.counts.total}, iteration has ${obs.all.length}`);
  for (const [id, g] of Object.entries(obs.gets)) {
    const it = seen.get(id)?.digest ?? null;
    if (g.get !== it) problems.push(`get(${JSON.stringify(id)}) differs from iteration (${digestDifference(g.get, it).join(', ')})`);
    if (g.has !== (it !== null)) problems.push(`has(${JSON.stringify(id)}) = ${g.has}, iteration ${it === null ? 'lacks' : 'has'} it`);
  }
  if (obs.all.length > 0) {
    const hits = obs.recall ?? [];
    const want = Math.min(obs.all.length, 10_000);
    if (hits.length !== want) problems.push(`recall(k=${want}) returned ${hits.length} hits`);
    for (let i = 0; i < hits.length; i++) {
      const [id, score, digest] = hits[i];
      if (seen.get(id)?.digest !== digest) problems.push(`recall hit ${JSON.stringify(id)} differs from iteration`);
      if (!(typeof score === 'number' && Number.isFinite(score))) problems.push(`recall hit ${JSON.stringify(id)} has score ${score}`);
      if (i > 0 && hits[i - 1][1] < score) problems.push(`recall hits out of order at ${i}`);
    }
    if (JSON.stringify(obs.recallAsync) !== JSON.stringify(hits.map((h) => h[0]))) problems.push('recallAsync gives other hits than recall');
  }
  if (result.wrote) {
    const after = new Map(result.reread.map(([id, , d]) => [id, d]));
    const want = new Map(obs.all.map(([id, , d]) => [id, d]));
    const newOne = after.get('after-damage');
    after.delete('after-damage');
    if (newOne === undefined) problems.push('the record written after the damage is missing after migrate, compact and reopen');
    const diff = [...new Set([...after.keys(), ...want.keys()])].filter((id) => after.get(id) !== want.get(id));
    if (diff.length > 0) problems.push(`after a write, migrate, compact and reopen ${diff.length} records differ from what was read before, e.g. ${JSON.stringify(diff.slice(0, 5))}`);
    if (result.reread.length !== new Set(result.reread.map((r) => r[0])).size) problems.push('after a write, migrate, compact and reopen an id is yielded twice');
  }
  return { verdict: obs.tornLogBytes > 0 ? 'torn-tail' : 'intact', problems };
}

// ---------------------------------------------------------------------------
// Known engine issues: findings with a diagnosed cause, counted apart
// (`knownIssues` in the summary) so that new findings stand out; --strict
// counts them as findings. An entry is
//   { id, what, matches(ref, mutation, problem) → boolean }
// with a minimal reproducer in damage-repros.mjs; remove it once fixed. The
// list is empty: every reproducer runs in npm test as a regression check (an
// issue listed here must still reproduce).

const partsOf = (m) => (m.kind === 'double' ? m.parts : [m]);

export const KNOWN_ISSUES = [
];

/**
 * The known issues that explain `problems` (each problem by one of them), or
 * undefined when some problem is new.
 */
export function knownIssuesOf(ref, m, problems) {
  if (problems.length === 0) return undefined;
  const ids = new Set();
  for (const p of problems) {
    const k = KNOWN_ISSUES.find((issue) => issue.matches(ref, m, p));
    if (!k) return undefined;
    ids.add(k.id);
  }
  return [...ids];
}

// ---------------------------------------------------------------------------
// References and the run

async function buildReferences(base, log) {
  const refs = [];
  for (const kind of REFERENCE_KINDS) {
    const dir = path.join(base, `ref-${kind}`);
    let expect;
    let ready = false;
    const child = new LineChild(WORKER, ['--build', kind, '--dir', dir], {
      onLine: (line, complete) => {
        if (!complete) return;
        if (line.startsWith('expect ')) expect = JSON.parse(line.slice('expect '.length));
        if (line === 'ready') ready = true;
      },
    });
    if (kind === 'killed') {
      await child.waitFor(() => ready, 120_000);
      await child.kill('SIGKILL');
      if (!ready) throw new Error(`building the '${kind}' reference failed: ${child.stderr}`);
    } else {
      const exit = await child.exited;
      if (exit.code !== 0) throw new Error(`building the '${kind}' reference failed (${exit.code} ${exit.signal}): ${child.stderr}`);
    }
    if (!expect) throw new Error(`the '${kind}' reference reported no expectation: ${child.stderr}`);
    const logSize = fs.existsSync(path.join(dir, LOG_FILE)) ? logEnd(path.join(dir, LOG_FILE)) : 0;
    if (expect.log && expect.log.offsets[expect.log.offsets.length - 1] !== logSize) {
      throw new Error(`harness: the '${kind}' reference's log is ${logSize} bytes, its writes reported ${expect.log.offsets.join(',')}`);
    }
    log(`reference ${kind}: ${Object.keys(expect.records).length} records, files ${fs.readdirSync(dir).join(' ')}`);
    const earlierIndex = `${dir}-earlier-${INDEX_FILE}`;
    refs.push({ ...expect, dir, files: fs.readdirSync(dir).filter((f) => f !== 'LOCK'), earlierIndex: fs.existsSync(earlierIndex) ? earlierIndex : undefined });
  }
  return refs;
}

/**
 * Runs damage cases [0, cases) or until `seconds` have passed (whichever is
 * first; `only` runs just that case). Returns the summary.
 */
export async function runDamage({ cases = 300, seconds = Infinity, seed = 1, only, keep = false, plant, strict = false, log = () => {}, maxFindings = 30, caseTimeoutMs = 60_000 } = {}) {
  const started = Date.now();
  const knownIssues = {};
  const knownExamples = {};
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-damage-'));
  const findings = [];
  const verdicts = { intact: 0, detected: 0, 'torn-tail': 0 };
  const byMutation = {};
  let tried = 0;
  let writesChecked = 0; // cases that also wrote, migrated, compacted and re-read after a clean read
  const indexCases = { cases: 0, rebuilt: 0 }; // cases that damaged id.index, and those whose open rebuilt it
  const coldFilterCases = { cases: 0, intact: 0 }; // cases that damaged only cold filter files, and those read back exact
  try {
    const refs = await buildReferences(base, log);
    const work = path.join(base, 'work');
    fs.mkdirSync(work);
    const from = only ?? 0;
    const to = only === undefined ? cases : only + 1;
    const until = Number.isFinite(seconds) ? started + seconds * 1000 : 0;
    const refsByKind = new Map(refs.map((r) => [r.kind, r]));
    let next = from;
    const finding = (i, what, msg) => {
      const text = `seed ${seed} case ${i} (${what}): ${msg} [reproduce: node scripts/stress/damage.mjs --seed ${seed} --case ${i} --keep]`;
      log(`case ${i}: FINDING`);
      if (findings.length < maxFindings) findings.push(text);
    };
    while (next < to && (!until || Date.now() < until)) {
      const jobFile = path.join(base, 'job.json');
      fs.writeFileSync(jobFile, JSON.stringify({ refs: refs.map((r) => ({ kind: r.kind, dir: r.dir, ids: [...Object.keys(r.records), ...r.deleted], log: r.log, earlierIndex: r.earlierIndex })), seed, from: next, to, until, work, plant, keep }));
      let current = null; // { i, ref, mutation, at }
      let finished = false;
      const child = new LineChild(WORKER, ['--cases', jobFile], {
        onLine: (line, complete) => {
          if (!complete) return;
          if (line === 'finished') {
            finished = true;
            return;
          }
          const m = /^case (\d+) (start|result) (.*)$/.exec(line);
          if (!m) return;
          const i = Number(m[1]);
          const body = JSON.parse(m[3]);
          if (m[2] === 'start') {
            current = { i, ref: refsByKind.get(body.ref), mutation: body.mutation, at: Date.now() };
            return;
          }
          const { ref, mutation } = current;
          tried++;
          const { verdict, problems } = judgeCase(ref, mutation, body);
          verdicts[verdict]++;
          if (body.wrote) writesChecked++;
          if ((mutation.files ?? []).some((f) => path.basename(f).startsWith(INDEX_FILE))) {
            indexCases.cases++;
            if (body.ok && body.obs.indexRebuilt === true) indexCases.rebuilt++;
          }
          const names = (mutation.files ?? []).map((f) => path.basename(f));
          if (names.length > 0 && names.every((n) => COLD_FILTER.test(n))) {
            coldFilterCases.cases++;
            if (verdict === 'intact' && problems.length === 0) coldFilterCases.intact++;
          }
          const bm = (byMutation[mutation.kind] ??= { cases: 0, intact: 0, detected: 0, 'torn-tail': 0, findings: 0 });
          bm.cases++;
          bm[verdict]++;
          const known = strict ? undefined : knownIssuesOf(ref, mutation, problems);
          if (known) {
            for (const k of known) {
              knownIssues[k] = (knownIssues[k] ?? 0) + 1;
              knownExamples[k] ??= `seed ${seed} case ${i} (${ref.kind}: ${mutation.description}): ${problems.join('; ')}`;
            }
          } else if (problems.length > 0) {
            bm.findings++;
            finding(i, `${ref.kind}: ${mutation.description}`, problems.join('; '));
          }
          if (keep) log(`case ${i}: ${verdict}; the damaged store is kept in ${path.join(work, `case-${i}`)}`);
          current = null;
          next = i + 1;
        },
      });
      // Watch for hangs: a case that runs longer than caseTimeoutMs.
      for (;;) {
        await child.waitFor(() => !child.running || (current && Date.now() - current.at > caseTimeoutMs), 1000);
        if (!child.running) break;
        if (current && Date.now() - current.at > caseTimeoutMs) {
          await child.kill('SIGKILL');
          break;
        }
      }
      const exit = await child.exited;
      if (current) {
        // The worker died (or hung) inside a case.
        tried++;
        const { i, ref, mutation } = current;
        const bm = (byMutation[mutation.kind] ??= { cases: 0, intact: 0, detected: 0, 'torn-tail': 0, findings: 0 });
        bm.cases++;
        bm.findings++;
        const how = Date.now() - current.at > caseTimeoutMs ? `hung for more than ${caseTimeoutMs} ms` : `the reading process died (code ${exit.code}, signal ${exit.signal})`;
        finding(i, `${ref.kind}: ${mutation.description}`, `${how}: ${child.stderr.slice(-1500)}`);
        next = i + 1;
      } else if (!finished && exit.code !== 0) {
        finding(next, 'worker', `the worker failed between cases (code ${exit.code}, signal ${exit.signal}): ${child.stderr.slice(-1500)}`);
        break;
      } else if (finished) {
        break;
      }
    }
  } finally {
    if (!keep) fs.rmSync(base, { recursive: true, force: true });
  }
  return {
    name: 'damage',
    seed,
    cases: tried,
    verdicts,
    writesChecked,
    indexCases,
    coldFilterCases,
    byMutation,
    findings,
    knownIssues,
    knownExamples,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

if (isMain(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2), { cases: 1000, seconds: 0, seed: 1, case: -1, keep: false, quiet: false, strict: false });
  const summary = await runDamage({
    cases: args.seconds > 0 && process.argv.indexOf('--cases') === -1 ? Number.MAX_SAFE_INTEGER : args.cases,
    seconds: args.seconds > 0 ? args.seconds : Infinity,
    seed: args.seed,
    only: args.case >= 0 ? args.case : undefined,
    keep: args.keep,
    strict: args.strict,
    log: args.quiet ? () => {} : (msg) => process.stderr.write(msg + '\n'),
  });
  for (const f of summary.findings) process.stdout.write(`FINDING ${f}\n`);
  for (const [k, n] of Object.entries(summary.knownIssues)) process.stdout.write(`KNOWN ${k} × ${n}, e.g. ${summary.knownExamples[k]}\n`);
  printSummary(summary);
  process.exitCode = summary.findings.length > 0 ? 1 : 0;
}
