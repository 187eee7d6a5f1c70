// A put whose records the capacity migration would demote in the same call
// writes those records once, straight to warm blocks, then commits the batch
// with one log append (the records that stay hot and a sequence mark); see
// docs/durability.md and docs/format/hot-log.md. These tests check that such a
// putMany stays all or nothing when the process is killed at any system call
// on the store's files, in both durabilities; that 'sync' syncs the warm
// files before the log commit (and passes the power-loss order checker); and
// that a store whose hot.log is format version 3 opens, reads back and is
// rewritten in the current version by its first writable open.
//
// The kills use strace fault injection (as test/index-file.test.ts does for
// the close): strace is required when TIERSTORE_REQUIRE_STRACE=1 or CI=true,
// elsewhere the output says the traced runs did not happen.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import type { MemoryInput, MemoryStore, Tier } from '../lib/index.js';
import { REPO_ROOT, ScriptChild, spawnAsync } from './helpers/child.js';
import { canonicalOf, indexRecord } from './helpers/index-store.js';
import { pickCounts, Scratch } from './helpers/store.js';
import { checkPowerLossOrder, parseTrace, REPORT_MAPPINGS_JS, STRACE_ARGS } from './helpers/syscall-order.js';

const DIMS = 8;
// Small capacities: a 60-record putMany demotes most of itself (and some of
// the records already hot) to warm, and overflows warm into a new cold segment.
const CAPACITIES = { hotCapacity: 20, warmCapacity: 30 };

const straceWorks = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;
const straceRequired = process.env.TIERSTORE_REQUIRE_STRACE === '1' || process.env.CI === 'true';
if (!straceWorks && !straceRequired) {
  console.warn('NOT RUN: the kills at each system call of a demoting putMany and its traced sync order (strace is missing or ptrace is refused here); CI requires them');
}
const needStrace = () => {
  expect(straceWorks, 'strace is required here (TIERSTORE_REQUIRE_STRACE=1 or CI=true): apt-get install strace, allow ptrace').toBe(true);
};

/** A record as JSON can carry it to a child (the embedding as a plain array of its float32 values). */
function plainRecord(r: MemoryInput): MemoryInput {
  return { ...r, embedding: Array.from(r.embedding) };
}

// ---------------------------------------------------------------------------
// The store before the putMany, and the putMany

interface Fixture {
  /** A cleanly closed store with records in every tier. */
  pristine: string;
  /** id → canonical data of every record of the pristine store. */
  before: Map<string, string>;
  /** The tier of each record of the pristine store. */
  tiers: Map<string, Tier>;
  /** The putMany: new ids and upserts of ids in each tier. */
  batch: MemoryInput[];
  /** id → canonical data of the batch's version. */
  after: Map<string, string>;
  batchFile: string;
}

/**
 * 'mixed': 60 records, new ids and upserts of 8 ids of each tier, with
 * activations such that some of each stay hot and some go down, and hot
 * records outside the batch go down too. 'low': 10 records of activation 0
 * (new ids and upserts of warm and cold ids), below every hot record: all of
 * them go down, and the commit is a lone sequence mark.
 */
function buildFixture(scratch: Scratch, kind: 'mixed' | 'low'): Fixture {
  const base = scratch.dir();
  const pristine = path.join(base, 'pristine');
  const s = open(pristine, { dimensions: DIMS, ...CAPACITIES });
  const old = Array.from({ length: 70 }, (_, i) => indexRecord('old', i, DIMS));
  for (let at = 0; at < old.length; at += 10) s.putMany(old.slice(at, at + 10));
  s.migrate();
  const before = new Map<string, string>();
  const tiers = new Map<string, Tier>();
  for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) {
    before.set(m.id, canonicalOf({ ...m, embedding: m.embedding! }));
    tiers.set(m.id, m.tier);
  }
  const c = s.counts();
  expect(c.hot > 8 && c.warm > 8 && c.cold > 8, `records in every tier: ${JSON.stringify(c)}`).toBe(true);
  s.close();
  const inTier = (t: Tier) => [...tiers].filter(([, x]) => x === t).map(([id]) => id);
  let batch: MemoryInput[];
  if (kind === 'mixed') {
    batch = Array.from({ length: 36 }, (_, i) => indexRecord('new', i, DIMS, 1));
    let i = 500;
    for (const t of ['hot', 'warm', 'cold'] as const) {
      for (const id of inTier(t).slice(0, 8)) batch.push({ ...indexRecord('old', i++, DIMS, 1), id });
    }
  } else {
    batch = Array.from({ length: 6 }, (_, i) => indexRecord('low', i, DIMS, 1));
    let i = 600;
    for (const t of ['warm', 'cold'] as const) {
      for (const id of inTier(t).slice(0, 2)) batch.push({ ...indexRecord('old', i++, DIMS, 1), id });
    }
    batch = batch.map((r) => ({ ...r, activation: 0 }));
  }
  const after = new Map(batch.map((r) => [r.id, canonicalOf(r)]));
  const batchFile = path.join(base, 'batch.json');
  fs.writeFileSync(batchFile, JSON.stringify(batch.map(plainRecord)));
  return { pristine, before, tiers, batch, after, batchFile };
}

function copyStore(from: string, to: string): string {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
  return to;
}

// ---------------------------------------------------------------------------
// Reading a store after a kill: all of the batch or none of it

type Outcome = 'all' | 'none';

interface Reading {
  rows: Array<[string, Tier, string]>;
  counts: { hot: number; warm: number; cold: number; total: number };
}

function readRows(s: MemoryStore): Reading {
  const rows: Array<[string, Tier, string]> = [];
  for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) rows.push([m.id, m.tier, canonicalOf({ ...m, embedding: m.embedding! })]);
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { rows, counts: pickCounts(s.counts()) };
}

/**
 * Opens the store at `dir` read-only, then writable (recovery runs and frees
 * what it drops),
 * checks that it holds the pristine records with either all of the batch or
 * none of it, each id once, then closes it cleanly, reopens it and checks
 * that the answer is the same. Returns which of the two it holds.
 */
function judge(fx: Fixture, dir: string, what: string): Outcome {
  // A read-only open first: it must hide what recovery would drop without
  // writing anything, and answer as the writable open does.
  const ro = open(dir, { readOnly: true });
  let readOnly: Reading;
  try {
    readOnly = readRows(ro);
  } finally {
    ro.close();
  }
  const s = open(dir);
  let first: Reading;
  let outcome: Outcome;
  try {
    first = readRows(s);
    const ids = first.rows.map((r) => r[0]);
    const twice = ids.filter((id, i) => i > 0 && ids[i - 1] === id);
    expect(twice, `${what}: ids iterate() yielded more than once`).toEqual([]);
    expect(first.counts.total, `${what}: counts().total is the number of distinct ids`).toBe(ids.length);
    expect(first.counts.hot + first.counts.warm + first.counts.cold, `${what}: counts() add up`).toBe(first.counts.total);
    const got = new Map(first.rows.map(([id, , c]) => [id, c]));
    const extra = ids.filter((id) => !fx.before.has(id) && !fx.after.has(id));
    expect(extra, `${what}: ids that were never written`).toEqual([]);
    const untouched = [...fx.before].filter(([id]) => !fx.after.has(id));
    const changed = untouched.filter(([id, c]) => got.get(id) !== c).map(([id]) => id);
    expect(changed, `${what}: records outside the batch missing or changed`).toEqual([]);
    let asBatch = 0;
    let asBefore = 0;
    const other: string[] = [];
    for (const [id, c] of fx.after) {
      const g = got.get(id);
      if (g === c) asBatch++;
      else if (g === fx.before.get(id)) asBefore++; // both undefined for a new id
      else other.push(id);
    }
    expect(other, `${what}: batch ids holding neither the batch's version nor the previous one`).toEqual([]);
    expect(
      asBatch === fx.after.size || asBefore === fx.after.size,
      `${what}: all of the batch or none of it, found ${asBatch} of ${fx.after.size} records in the batch's version and ${asBefore} as before`,
    ).toBe(true);
    outcome = asBatch === fx.after.size ? 'all' : 'none';
    expect(readOnly, `${what}: a read-only open before it answered the same`).toEqual(first);
    for (const id of [...fx.before.keys(), ...fx.after.keys()]) {
      expect(s.has(id), `${what}: has(${id})`).toBe(got.has(id));
    }
  } finally {
    s.close();
  }
  const again = open(dir);
  try {
    const second = readRows(again);
    expect(second, `${what}: after a clean close, the reopened store answers the same`).toEqual(first);
    const wrongGets = second.rows
      .filter(([id, , c]) => {
        const m = again.get(id, { includeEmbedding: true });
        return m === undefined || canonicalOf({ ...m, embedding: m.embedding! }) !== c;
      })
      .map((r) => r[0]);
    expect(wrongGets, `${what}: get() answers as iterate() does`).toEqual([]);
  } finally {
    again.close();
  }
  return outcome;
}

/** Whether a warm file of `dir` holds the content of one of `recs` (warm keeps contents as bytes in warm-var-*.dat). */
function warmHoldsContentOf(dir: string, recs: MemoryInput[]): boolean {
  const files = fs.readdirSync(dir).filter((f) => /^warm/.test(f)).map((f) => fs.readFileSync(path.join(dir, f)));
  return recs.some((r) => files.some((b) => b.includes(Buffer.from(r.content, 'utf8'))));
}

// ---------------------------------------------------------------------------
// Traced runs

// The child: opens the store, writes a marker, runs the putMany, writes a
// second marker, reports the tiers and ACKED. With "hold" it then waits to
// be killed; otherwise it exits without closing the store.
const PUTTER = String.raw`
const fs = require('node:fs');
const { open } = require(process.env.TIERSTORE_REPO);
const [dir, markerFile, batchFile, durability, hold] = process.argv.slice(2);
const batch = JSON.parse(fs.readFileSync(batchFile, 'utf8'));
const marker = fs.openSync(markerFile, 'w');
const s = open(dir, { durability, hotCapacity: ${CAPACITIES.hotCapacity}, warmCapacity: ${CAPACITIES.warmCapacity} });
fs.writeSync(marker, '@@putMany@@');
s.putMany(batch);
fs.writeSync(marker, '@@returned@@');
const tiers = {};
for (const m of s.iterate()) tiers[m.id] = m.tier;
fs.writeSync(1, 'ACKED ' + JSON.stringify(tiers) + '\n');
if (hold === 'hold') setInterval(() => {}, 1 << 30);
else process.exit(0);
`;

// The calls that can change a store file, or map, sync or unmap it.
const TRACED = [
  'openat', 'write', 'pwrite64', 'pwritev', 'pwritev2', 'writev', 'fsync', 'fdatasync', 'sync_file_range',
  'ftruncate', 'fallocate', 'msync', 'madvise', 'mmap', 'munmap', 'rename', 'renameat', 'renameat2',
  'unlink', 'unlinkat', 'close',
];
// Calls that name memory, not a file: attributed to the file mapped there.
const ADDRESS_CALLS = new Set(['msync', 'madvise', 'munmap']);

interface Call {
  tid: string;
  name: string;
  /** The ordinal of this call among the calls of the same name by the same thread (strace's inject "when" without -P). */
  nth: number;
  /** The same among the calls that name a file of the store or the marker file (inject "when" with -P of those paths). */
  nthNamed: number;
  /** The paths the call names by descriptor or path (not by address). */
  named: string[];
  text: string;
  /** The store files the call names (by descriptor, path or mapped address), relative to the store. */
  files: string[];
  /** The return value, "?" for a call the process died in. */
  result: string;
  /** For address calls, the length argument. */
  length?: string;
}

/** The calls of a strace -f -y trace, split calls joined, with the store files each one touches. */
function parseCalls(trace: string, dir: string, markerFile: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, Call>();
  const counts = new Map<string, number>();
  const namedCounts = new Map<string, number>();
  const maps: Array<{ start: bigint; end: bigint; file: string }> = [];
  const rel = (p: string) => (p === dir ? '.' : path.dirname(p) === dir ? path.basename(p) : undefined);
  const finish = (c: Call) => {
    const r = /\)\s+=\s+(\S+)[^)]*$/.exec(c.text);
    c.result = r ? r[1]! : '?';
    const args = c.text.slice(c.name.length + 1);
    const files = new Set<string>();
    for (const m of args.matchAll(/\d+<([^>]*)>|"(\/[^"]*)"/g)) {
      const p = m[1] ?? m[2]!;
      const f = rel(p);
      if (f !== undefined) files.add(f);
      if (f !== undefined || p === markerFile) c.named.push(p);
    }
    if (ADDRESS_CALLS.has(c.name)) {
      const [, a, l] = /^(0x[0-9a-f]+|\d+), (\d+)/.exec(args) ?? [];
      const start = BigInt(a!);
      const end = start + BigInt(l!);
      c.length = l;
      for (const m of maps) if (m.start < end && start < m.end) files.add(m.file);
      if (c.name === 'munmap') {
        for (let i = maps.length - 1; i >= 0; i--) if (maps[i]!.start < end && start < maps[i]!.end) maps.splice(i, 1);
      }
    }
    if (c.name === 'mmap' && /MAP_SHARED/.test(args) && /^0x[0-9a-f]+$/.test(c.result)) {
      const fd = /MAP_SHARED[^,]*, \d+<([^>]*)>/.exec(args)?.[1];
      const f = fd === undefined ? undefined : rel(fd);
      if (f !== undefined) {
        const start = BigInt(c.result);
        maps.push({ start, end: start + BigInt(args.split(',')[1]!.trim()), file: f });
      }
    }
    c.files = [...files];
  };
  for (const raw of trace.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, tid, rest] = m as unknown as [string, string, string];
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      const head = pending.get(tid);
      pending.delete(tid);
      if (head) {
        head.text += resumed[2]!;
        finish(head);
      }
      continue;
    }
    const c = /^(\w+)\(/.exec(rest);
    if (!c) continue;
    const key = `${tid}:${c[1]}`;
    const nth = (counts.get(key) ?? 0) + 1;
    counts.set(key, nth);
    const call: Call = { tid, name: c[1]!, nth, nthNamed: 0, named: [], text: rest, files: [], result: '' };
    calls.push(call);
    if (/ <unfinished \.\.\.>$/.test(rest)) {
      call.text = rest.replace(/ <unfinished \.\.\.>$/, '');
      pending.set(tid, call);
    } else {
      finish(call);
    }
  }
  for (const c of pending.values()) finish(c);
  for (const c of calls) {
    if (c.named.length === 0) continue;
    const key = `${c.tid}:${c.name}`;
    c.nthNamed = (namedCounts.get(key) ?? 0) + 1;
    namedCounts.set(key, c.nthNamed);
  }
  return calls;
}

const signature = (c: Call) => `${c.name} ${c.files.join(',')}${c.length === undefined ? '' : ` length ${c.length}`}`;
const describeCall = (c: Call) => `${c.name}#${c.nth} ${c.text.slice(0, 150)}`;

/** The calls on store files by the thread that wrote the first marker, between the two markers. */
function callsBetweenMarkers(calls: Call[]): { points: Call[]; main: string } {
  const begin = calls.findIndex((c) => c.name === 'write' && c.text.includes('@@putMany@@'));
  expect(begin, 'the traced run wrote its first marker').toBeGreaterThanOrEqual(0);
  const main = calls[begin]!.tid;
  const end = calls.findIndex((c, i) => i > begin && c.name === 'write' && c.text.includes('@@returned@@'));
  const points = calls.slice(begin + 1, end < 0 ? undefined : end).filter((c) => c.tid === main && c.files.length > 0);
  return { points, main };
}

async function tracedPut(fx: Fixture, dir: string, durability: 'sync' | 'relaxed', extra: string[]) {
  const markerFile = `${dir}.marker`;
  const traceFile = `${dir}.trace`;
  const scriptFile = path.join(path.dirname(fx.batchFile), 'putter.cjs');
  if (!fs.existsSync(scriptFile)) fs.writeFileSync(scriptFile, PUTTER);
  // --single-threaded: V8 does its collection work on the main thread, so
  // strace's per-thread call counts (inject "when") name the same call in
  // every run; otherwise V8's worker threads' madvise calls shift them.
  const r = await spawnAsync('strace', [
    '-f', '-y', '-qq', '-s', '40', '-e', `trace=${TRACED.join(',')}`, ...extra, '-o', traceFile,
    process.execPath, '--single-threaded', scriptFile, dir, markerFile, fx.batchFile, durability,
  ], { timeout: 60_000, env: { ...process.env, TIERSTORE_REPO: REPO_ROOT } });
  return { r, calls: parseCalls(fs.readFileSync(traceFile, 'utf8'), dir, markerFile) };
}

/** Runs `jobs` two at a time. */
async function inPairs<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

interface KillResult {
  point: Call;
  outcome?: Outcome;
  /** Whether the killed store held the content of a batch record in a warm file before it was reopened. */
  warmWritten?: boolean;
  problem?: string;
}

describe('a demoting putMany killed at every system call on the store files', () => {
  const scratch = new Scratch();
  afterAll(() => scratch.cleanup());
  const fixtures = new Map<string, Fixture>();
  beforeAll(() => {
    for (const kind of ['mixed', 'low'] as const) fixtures.set(kind, buildFixture(scratch, kind));
  });
  const cases = [
    { kind: 'mixed', durability: 'relaxed', title: 'part of the batch stays hot' },
    { kind: 'mixed', durability: 'sync', title: 'part of the batch stays hot' },
    { kind: 'low', durability: 'relaxed', title: 'all of the batch goes to warm, the commit a lone mark' },
    { kind: 'low', durability: 'sync', title: 'all of the batch goes to warm, the commit a lone mark' },
  ] as const;

  for (const { kind, durability, title } of cases) {
    it.skipIf(!straceWorks && !straceRequired)(`'${durability}', ${title}: all of the batch or none of it, each id once, after a kill at any call`, async () => {
      needStrace();
      const fx = fixtures.get(kind)!;
      const base = path.dirname(fx.batchFile);

      // 1. A whole run: the calls of the putMany on the store's files.
      const whole = copyStore(fx.pristine, path.join(base, `${durability}-whole`));
      const { r, calls } = await tracedPut(fx, whole, durability, []);
      expect(r.status, r.stderr).toBe(0);
      const acked = r.stdout.split('\n').find((l) => l.startsWith('ACKED '));
      expect(acked, `the whole run returned from the putMany: ${r.stderr}`).toBeDefined();
      const tiersAfter = new Map(Object.entries(JSON.parse(acked!.slice(6)) as Record<string, Tier>));
      if (kind === 'mixed') {
        // Of the new ids and of the upserts of each tier, some stay hot and
        // some go down; records hot before and not in the batch go down too.
        for (const from of ['new', 'hot', 'warm', 'cold'] as const) {
          const group = fx.batch.filter((b) => (fx.tiers.get(b.id) ?? 'new') === from).map((b) => tiersAfter.get(b.id));
          expect(group.filter((t) => t === 'hot').length, `batch records (${from}) that stay hot: ${group.join(',')}`).toBeGreaterThan(0);
          expect(group.filter((t) => t !== 'hot').length, `batch records (${from}) that went down: ${group.join(',')}`).toBeGreaterThan(0);
        }
        const demotedOld = [...fx.tiers].filter(([id, t]) => t === 'hot' && !fx.after.has(id) && tiersAfter.get(id) !== 'hot');
        expect(demotedOld.length, 'records hot before, not in the batch, demoted by it').toBeGreaterThan(0);
      } else {
        const stayed = fx.batch.filter((b) => tiersAfter.get(b.id) === 'hot').map((b) => b.id);
        expect(stayed, 'no record of the batch stays hot').toEqual([]);
      }
      expect(judge(fx, whole, 'the whole run'), 'the whole run holds the batch').toBe('all');

      const { points } = callsBetweenMarkers(calls);
      const listing = `calls of the putMany on the store's files:\n${points.map(describeCall).join('\n')}`;
      const on = (file: RegExp, names: RegExp) => points.filter((p) => names.test(p.name) && p.files.some((f) => file.test(f)));
      // The kills must land inside the warm writes and inside the commit.
      if (durability === 'sync') {
        expect(on(/^warm\.blocks$/, /^fdatasync$/).length, `an fdatasync of warm.blocks: ${listing}`).toBeGreaterThan(0);
        expect(on(/^warm-var-\d+\.dat$/, /^fdatasync$/).length, `an fdatasync of warm-var: ${listing}`).toBeGreaterThan(0);
        expect(on(/^hot\.log$/, /^pwrite64$/).length, `the commit's pwrite of hot.log: ${listing}`).toBe(1);
        if (kind === 'low') {
          // A lone mark entry: a 16-byte entry header and the u64 sequence number.
          expect(/^pwrite64\(\d+<[^>]*>, ".*"(?:\.\.\.)?, (\d+),/.exec(on(/^hot\.log$/, /^pwrite64$/)[0]!.text)?.[1], `the commit writes one mark entry: ${listing}`).toBe('24');
        }
        expect(on(/^hot\.log$/, /^fdatasync$/).length, `an fdatasync of hot.log: ${listing}`).toBe(1);
      } else {
        // 'relaxed' writes warm blocks and appends to the log through shared
        // mappings: the calls are the madvise(MADV_POPULATE_WRITE) that fault
        // the pages in, and the log's ftruncate and mmap of its first mapped
        // append.
        expect(on(/^warm/, /^(madvise|write|pwrite64|ftruncate|fallocate)$/).length, `a write-side call on a warm file: ${listing}`).toBeGreaterThan(0);
        expect(on(/^hot\.log$/, /^(madvise|write|pwrite64|ftruncate|fallocate|mmap)$/).length, `a write-side call on hot.log: ${listing}`).toBeGreaterThan(0);
      }
      if (kind === 'mixed') {
        expect(on(/^cold-/, /^(write|pwrite64|rename)$/).length, `the putMany overflowed warm into a cold segment: ${listing}`).toBeGreaterThan(0);
        expect(on(/^MANIFEST/, /^(write|rename)$/).length, `the putMany wrote the MANIFEST: ${listing}`).toBeGreaterThan(0);
      }

      // The batch counts from its commit on, and not before. In 'sync' the
      // commit is the pwrite of hot.log (a kill at a call stops it before
      // the call runs); in 'relaxed' a copy into the log's mapping after its
      // last call on hot.log.
      const commitAt = durability === 'sync'
        ? points.findIndex((p) => p.name === 'pwrite64' && p.files.includes('hot.log'))
        : points.map((p) => p.files.includes('hot.log')).lastIndexOf(true);
      expect(commitAt, `the commit among the calls: ${listing}`).toBeGreaterThan(0);

      // 2. For each call: a run killed at it, then the store read back. After
      // its commit the 'low' putMany runs the same migration as the 'mixed'
      // one, whose kills cover that part: its kills stop at the first call
      // after the commit.
      const killed = kind === 'low' ? points.slice(0, commitAt + 2) : points;
      // A call that names a file is counted among the calls on the store's
      // files only (strace -P of every store file the whole run named, and
      // of the marker): other calls of the process, whose number varies from
      // run to run, do not shift it. A call that names only memory (madvise,
      // msync, munmap of a mapping) cannot be selected by path; it is
      // counted among all the thread's calls of its name, and a run whose
      // kill landed elsewhere is run again.
      const storeNames = [...new Set(calls.filter((c) => c.named.length > 0).flatMap((c) => c.files))];
      const direct = fx.batch.filter((b) => tiersAfter.get(b.id) !== 'hot');
      const results = await inPairs(killed.map((pt, i) => async (): Promise<KillResult> => {
        const dir = path.join(base, `${durability}-kill-${i}`);
        const what = `'${durability}' SIGKILL at ${describeCall(pt)}`;
        const byPath = pt.named.length > 0;
        try {
          let landing = '';
          for (let attempt = 1; attempt <= (byPath ? 1 : 4); attempt++) {
            copyStore(fx.pristine, dir);
            const extra = byPath
              ? [...storeNames.flatMap((f) => ['-P', f === '.' ? dir : path.join(dir, f)]), '-P', `${dir}.marker`,
                '-e', `inject=${pt.name}:signal=SIGKILL:when=${pt.nthNamed}`]
              : ['-e', `inject=${pt.name}:signal=SIGKILL:when=${pt.nth}`];
            const k = await tracedPut(fx, dir, durability, extra);
            const { main } = callsBetweenMarkers(k.calls);
            const landed = k.calls.find((c) => c.tid === main && c.name === pt.name && (byPath ? c.nthNamed === pt.nthNamed : c.nth === pt.nth));
            landing = k.r.stdout.includes('ACKED') ? 'the putMany returned'
              : landed === undefined ? 'the call was not reached'
              : signature(landed) !== signature(pt) ? `the kill landed on ${describeCall(landed)}`
              : landed.result !== '?' ? `the process did not die in ${describeCall(landed)}`
              : '';
            if (landing === '') break;
          }
          expect(landing, `${what}: the kill landed on the intended call, inside the putMany`).toBe('');
          const warmWritten = warmHoldsContentOf(dir, direct);
          const outcome = judge(fx, dir, what);
          return { point: pt, outcome, warmWritten };
        } catch (e) {
          return { point: pt, problem: String((e as Error).message).split('\n').slice(0, 4).join(' | ') };
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
          fs.rmSync(`${dir}.trace`, { force: true });
          fs.rmSync(`${dir}.marker`, { force: true });
        }
      }));
      const summary = results.map((x) => `${x.outcome ?? 'FAILED'}${x.warmWritten ? ' (batch in warm files)' : ''} ← ${describeCall(x.point)}`).join('\n');
      if (process.env.TIERSTORE_DEBUG_TRACE) console.log(`'${durability}' kill points:\n${summary}`);
      const problems = results.filter((x) => x.problem !== undefined).map((x) => x.problem!);
      expect(problems, `${problems.length} of ${killed.length} kill points misbehaved`).toEqual([]);

      // None of the batch up to the commit, all of it after.
      const expected = killed.map((_, i) => (i <= commitAt ? 'none' : 'all'));
      expect(results.map((x) => x.outcome), `outcome per kill point:\n${summary}`).toEqual(expected);

      // Kills between the warm writes and the commit: the batch's records were
      // in the warm files, and recovery dropped them.
      const between = results.filter((x) => x.outcome === 'none' && x.warmWritten);
      expect(between.length, `kills after the warm writes, before the commit:\n${summary}`).toBeGreaterThan(0);
      if (durability === 'sync') {
        // Its sync of the warm files and the commit's own write are among them.
        for (const [file, name] of [['warm.blocks', 'fdatasync'], ['hot.log', 'pwrite64']]) {
          expect(between.some((x) => x.point.name === name && x.point.files.includes(file!)), `a kill at ${name}(${file}) found the batch in warm and dropped it:\n${summary}`).toBe(true);
        }
      } else {
        // In 'relaxed' the warm writes and the log append are copies into
        // shared mappings, with no system call between them once the log is
        // mapped. The child's putMany is the first append after its open, so
        // the log is mapped then: its mmap, ftruncate (growing the file) and
        // madvise come after the warm writes and before the copy that
        // commits, and a kill there is deterministic. After the first append
        // there is no such call, and 'sync' (the fdatasyncs and the pwrite)
        // covers that step.
        expect(between.some((x) => x.point.name === 'ftruncate' && x.point.files.includes('hot.log')), `a kill at ftruncate(hot.log) found the batch in warm and dropped it:\n${summary}`).toBe(true);
      }
    }, 120_000);

  }

  for (const durability of ['relaxed', 'sync'] as const) {
    it(`'${durability}': killed right after the putMany returned, the store holds all of the batch`, async () => {
      const fx = fixtures.get('mixed')!;
      const dir = copyStore(fx.pristine, path.join(path.dirname(fx.batchFile), `${durability}-acked`));
      const child = new ScriptChild(String.raw`
        const s = ts.open(args.dir, { durability: args.durability, hotCapacity: ${CAPACITIES.hotCapacity}, warmCapacity: ${CAPACITIES.warmCapacity} });
        s.putMany(JSON.parse(fs.readFileSync(args.batchFile, 'utf8')));
        fs.writeSync(1, 'ACKED\n');
        setInterval(() => {}, 1 << 30);
      `, { dir, durability, batchFile: fx.batchFile });
      const acked = await child.waitFor((l) => l.includes('ACKED'), 30_000);
      expect(acked, `the putMany returned: ${child.stderr}`).toBe(true);
      const exit = await child.kill('SIGKILL');
      expect(exit.signal, `killed, not exited: ${child.stderr}`).toBe('SIGKILL');
      expect(judge(fx, dir, `'${durability}' killed after the putMany returned`)).toBe('all');
    });
  }
});

// ---------------------------------------------------------------------------
// The order of writes and syncs in 'sync'

// The store goes on a file system that writes pages back: on tmpfs an msync
// leaves pages dirty and the mapping reports would mean nothing.
function writebackDir(scratch: Scratch): string {
  const fsType = spawnSync('stat', ['-f', '-c', '%T', os.tmpdir()], { encoding: 'utf8' }).stdout.trim();
  if (fsType !== 'tmpfs') return scratch.dir();
  const d = fs.mkdtempSync(path.join(REPO_ROOT, '.powerloss-'));
  afterAll(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const ORDERED_PUTTER = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const { open } = require(process.env.TIERSTORE_REPO);
const [dir, markerFile, batchFile] = process.argv.slice(2);
${REPORT_MAPPINGS_JS}
const marker = fs.openSync(markerFile, 'w');
const storeDir = path.resolve(dir);
const mark = (name) => { reportMappings(marker, storeDir); fs.writeSync(marker, '@@' + name + '@@'); };
const batch = JSON.parse(fs.readFileSync(batchFile, 'utf8'));
mark('open');
const s = open(dir, { durability: 'sync', hotCapacity: ${CAPACITIES.hotCapacity}, warmCapacity: ${CAPACITIES.warmCapacity} });
mark('putMany');
s.putMany(batch);
mark('end');
process.stdout.write(JSON.stringify(s.counts()) + '\n');
process.exit(0);
`;

describe("the order of a demoting putMany's writes and syncs in 'sync'", () => {
  const scratch = new Scratch();
  afterAll(() => scratch.cleanup());

  it.skipIf(!straceWorks && !straceRequired)('warm files synced once each before the commit write of hot.log, hot.log synced after it; the power-loss checker passes', async () => {
    needStrace();
    const fx = buildFixture(scratch, 'mixed');
    const base = writebackDir(scratch);
    const dir = copyStore(fx.pristine, path.join(base, 'ordered'));
    const markerFile = path.join(base, 'ordered.marker');
    const traceFile = path.join(base, 'ordered.trace');
    const scriptFile = path.join(base, 'ordered.cjs');
    fs.writeFileSync(scriptFile, ORDERED_PUTTER);
    const r = await spawnAsync('strace', [...STRACE_ARGS, '-o', traceFile, process.execPath, scriptFile, dir, markerFile, fx.batchFile], {
      timeout: 60_000,
      env: { ...process.env, TIERSTORE_REPO: REPO_ROOT },
    });
    expect(r.status, r.stderr).toBe(0);
    const trace = fs.readFileSync(traceFile, 'utf8');
    const events = parseTrace(trace, dir, markerFile);
    expect(events.filter((e) => e.kind === 'marker').map((e) => (e as { name: string }).name)).toEqual(['open', 'putMany', 'end']);
    const report = checkPowerLossOrder(events, dir);
    expect(report.violations, 'the power-loss order checker').toEqual([]);
    // The checker lets tier data written through mappings stay unsynced
    // between log checkpoints, because it takes every record to be in the
    // synced log. The records a demoting put writes straight to warm are not
    // in the log: their sync before the commit is checked below.
    expect(report.exercised.commit, 'the checker saw written files to check').toBeGreaterThan(0);

    // The putMany's events, by file.
    const lines = trace.split('\n');
    const from = events.find((e) => e.kind === 'marker' && e.name === 'putMany')!.line;
    const to = events.find((e) => e.kind === 'marker' && e.name === 'end')!.line;
    const ops = events.filter((e) => e.line > from && e.line < to);
    const base_ = (p: string) => path.basename(p);
    const listing = ops.map((e) => `${e.kind} ${lines[e.line]!.slice(0, 140)}`).join('\n');
    const fdSyncs = (file: RegExp) => ops.filter((e) => e.kind === 'sync' && file.test(base_(e.path)) && /\bf(data)?sync\(/.test(lines[e.line]!));
    const logWrites = ops.filter((e) => e.kind === 'write' && base_(e.path) === 'hot.log');
    expect(logWrites.length, `one write of hot.log, the commit: ${listing}`).toBe(1);
    const commit = logWrites[0]!.line;
    for (const file of [/^warm-var-\d+\.dat$/, /^warm\.blocks$/, /^hot\.log$/]) {
      expect(fdSyncs(file).length, `${file} synced once by the putMany: ${listing}`).toBe(1);
    }
    expect(fdSyncs(/^warm-var-\d+\.dat$/)[0]!.line, `warm-var synced before the commit: ${listing}`).toBeLessThan(commit);
    expect(fdSyncs(/^warm\.blocks$/)[0]!.line, `warm.blocks synced before the commit: ${listing}`).toBeLessThan(commit);
    expect(fdSyncs(/^hot\.log$/)[0]!.line, `hot.log synced after the commit write: ${listing}`).toBeGreaterThan(commit);
    // The warm mappings (blocks and variable-length data) flushed before the commit too.
    const msyncedBefore = new Set(ops.filter((e) => e.kind === 'sync' && e.line < commit && /\bmsync\(/.test(lines[e.line]!)).map((e) => base_((e as { path: string }).path)));
    expect([...msyncedBefore].sort(), `the warm mappings msynced before the commit: ${listing}`).toEqual(expect.arrayContaining(['warm.blocks']));
  }, 60_000);
});

// ---------------------------------------------------------------------------
// A version 3 log

const LOG_HEADER_BYTES = 40;

function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The entry types of a hot log, in order (docs/format/hot-log.md). */
function logEntryTypes(file: string): number[] {
  const b = fs.readFileSync(file);
  const endMark = b.readBigUInt64LE(32) & 0xffffffffffffn;
  const end = endMark === 0n ? b.length : Number(endMark);
  const types: number[] = [];
  for (let at = LOG_HEADER_BYTES; at + 16 <= end;) {
    types.push(b[at + 4]!);
    at += 16 + Number(b.readBigUInt64LE(at + 8));
  }
  return types;
}

const logVersion = (dir: string) => fs.readFileSync(path.join(dir, 'hot.log')).readUInt32LE(8);
// The version every hot.log is written in (docs/format/hot-log.md).
const CURRENT_LOG_VERSION = 5;

describe('a store whose hot.log is format version 3', () => {
  const scratch = new Scratch();
  afterAll(() => scratch.cleanup());

  it('opens read-only and writable, reads back exactly, and its first writable open rewrites the log in the current version', () => {
    const p = scratch.storePath();
    // Within the hot capacity and with no migration, so the log is never
    // rewritten: it holds put, batch, commit, delete and access entries only.
    const recs = Array.from({ length: 12 }, (_, i) => indexRecord('v3', i, DIMS));
    const s = open(p, { dimensions: DIMS });
    s.putMany(recs.slice(0, 6));
    for (const r of recs.slice(6)) s.put(r);
    expect(s.delete(recs[2]!.id)).toBe(true);
    s.get(recs[4]!.id);
    s.close();
    const want = new Map(recs.filter((_, i) => i !== 2).map((r) => [r.id, canonicalOf(r)]));
    const log = path.join(p, 'hot.log');
    const types = logEntryTypes(log);
    expect(types.length, 'the log holds entries').toBeGreaterThan(0);
    expect(types.filter((t) => t < 1 || t > 5), `only the entry types of version 3 (${types.join(',')})`).toEqual([]);
    expect(types, 'a batch and its commit, puts and a delete').toEqual(expect.arrayContaining([1, 2, 3, 4]));
    expect(logVersion(p), 'written in the current version').toBe(CURRENT_LOG_VERSION);

    // Make it version 3: the version field and the header checksum over it.
    const bytes = fs.readFileSync(log);
    bytes.writeUInt32LE(3, 8);
    bytes.writeUInt32LE(crc32c(bytes.subarray(0, 24)), 24);
    fs.writeFileSync(log, bytes);
    expect(logVersion(p)).toBe(3);

    const read = (store: MemoryStore) => {
      const got = new Map<string, string>();
      for (const m of store.iterate({ tier: 'all', includeEmbeddings: true })) {
        expect(got.has(m.id), `${m.id} yielded once`).toBe(false);
        got.set(m.id, canonicalOf({ ...m, embedding: m.embedding! }));
      }
      expect(store.counts().total).toBe(got.size);
      return got;
    };
    const ro = open(p, { readOnly: true });
    try {
      expect(read(ro), 'read-only open of the version 3 log').toEqual(want);
    } finally {
      ro.close();
    }
    expect(logVersion(p), 'a read-only open leaves the log as it is').toBe(3);

    const rw = open(p, { ...CAPACITIES });
    try {
      expect(read(rw), 'writable open of the version 3 log').toEqual(want);
      expect(logVersion(p), 'the first writable open rewrote the log in the current version').toBe(CURRENT_LOG_VERSION);
      expect(logEntryTypes(log)[0], 'the rewritten log starts with a sequence mark').toBe(6);
      // Now a put over the hot capacity writes straight to warm.
      const more = Array.from({ length: 30 }, (_, i) => indexRecord('v4', i, DIMS));
      rw.putMany(more);
      for (const r of more) want.set(r.id, canonicalOf(r));
      expect(rw.counts().warm, 'the putMany demoted records').toBeGreaterThan(0);
      expect(read(rw)).toEqual(want);
    } finally {
      rw.close();
    }
    const again = open(p);
    try {
      expect(read(again), 'reopened after the clean close').toEqual(want);
    } finally {
      again.close();
    }
    expect(logVersion(p)).toBe(CURRENT_LOG_VERSION);
  });
});
