// Disk full and I/O errors (issue 7, part 6). A child process
// (test/helpers/reliability-io-diskfull.cjs) writes to a store until a write
// fails because the disk is full — a small tmpfs mounted for the test — or
// because a file would pass the process's file-size limit (`ulimit -f` under
// `sh`, with SIGXFSZ ignored so the write gets EFBIG instead of killing the
// process; Node ignores SIGXFSZ itself too, which the child checks). Records
// are small and large, in puts and putManys, with upserts and deletes, and
// with migration to warm and cold and compaction near the limit.
//
// Checked: the failing write throws IO_ERROR (a TierStoreError) whose message
// names the file; a failing migrate() or compact() does the same and the
// writes go on; the process never dies (a SIGBUS from an mmap'd warm page
// would kill it: the warm tier posix_fallocate()s each chunk before mapping
// it); in the same process reads still work, a smaller write works or fails
// cleanly, and once space is freed writes work again and close() succeeds;
// reopened without the limit, the store holds every acknowledged write (and
// no acknowledged delete), the failed write completely or not at all, each id
// once, counts equal to what iterates.
//
// tmpfs needs mount(2) (root, as in CI). In CI (CI=true or
// TIERSTORE_REQUIRE_TMPFS=1) a refused mount fails the tmpfs scenarios: only
// they reach ENOSPC and check that writes work again once space is freed.
// Elsewhere they run under the file-size limit of the same size instead, and
// the test output says, by scenario, that the ENOSPC path did not run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import { REPO_ROOT, spawnAsync } from './helpers/child.js';
import { iterateAll } from './helpers/store.js';

const CHILD = path.join(REPO_ROOT, 'test', 'helpers', 'reliability-io-diskfull.cjs');

interface Scenario {
  name: string;
  /** tmpfs size in MiB, or a file-size limit in MiB. */
  tmpfsMiB?: number;
  fsizeMiB?: number;
  options: Record<string, unknown>;
  large: number;
  largeBytes: number;
  /** Op `hugeAt` writes a record of `hugeBytes` (a write that cannot fit). */
  hugeAt?: number;
  hugeBytes?: number;
  batchEvery?: number;
  deleteEvery?: number;
  upsertEvery?: number;
  migrateEvery?: number;
  compactEvery?: number;
  /** Whether a migrate() or compact() must have failed on the way (the scenario is built for it). */
  expectMaintenanceFailure?: boolean;
  /** Tiers that must hold records when the limit is hit (the scenario is built to fill them). */
  expectTiers?: Array<'warm' | 'cold'>;
}

interface Op { n: number; kind: string; ids: Array<[string, number]>; bytes?: number }
interface ErrInfo { name?: string; code?: string; message: string; isTierStoreError: boolean; ok?: boolean }

const TMPFS_REQUIRED = process.env.CI === 'true' || process.env.TIERSTORE_REQUIRE_TMPFS === '1';

const scratchRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-diskfull-'));
const mounted: string[] = [];
afterAll(() => {
  for (const m of mounted) spawnSync('umount', ['-l', m]);
  fs.rmSync(scratchRoot, { recursive: true, force: true });
});

/** Mounts a tmpfs of `mib` MiB at a new directory; undefined when mounting is not allowed here. */
function mountTmpfs(mib: number): string | undefined {
  const dir = fs.mkdtempSync(path.join(scratchRoot, 'tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (TMPFS_REQUIRED) {
      throw new Error(`mount -t tmpfs failed (${(r.stderr || r.error?.message || '').trim()}); the ENOSPC ` +
        'scenarios are required here (CI=true or TIERSTORE_REQUIRE_TMPFS=1): run as root, or allow mount(2)');
    }
    return undefined;
  }
  mounted.push(dir);
  return dir;
}

function unmount(dir: string): void {
  const r = spawnSync('umount', [dir]);
  if (r.status === 0) mounted.splice(mounted.indexOf(dir), 1);
}

interface Run {
  mode: 'tmpfs' | 'fsize';
  /** The directory holding the store (a tmpfs mount point in tmpfs mode). */
  base: string;
  storePath: string;
  limits: { fileSizeLimit: number | null; sigxfszIgnored: boolean };
  ops: Array<{ op: Op; acked: boolean }>;
  failed: ErrInfo & { n: number };
  maintenance: Array<ErrInfo & { n: number; kind: string }>;
  after: { reads: { ok: boolean; wrong?: number; iterated?: number; total?: number; counts?: Record<string, number> }; stillFull: ErrInfo; afterFree?: ErrInfo; close: ErrInfo };
  output: string;
}

async function runScenario(sc: Scenario): Promise<Run> {
  let mode: 'tmpfs' | 'fsize' = sc.tmpfsMiB !== undefined ? 'tmpfs' : 'fsize';
  let base: string | undefined;
  let fsizeMiB = sc.fsizeMiB;
  if (mode === 'tmpfs') {
    base = mountTmpfs(sc.tmpfsMiB!);
    if (base === undefined) {
      console.warn(`NOT RUN: the ENOSPC path of "${sc.name}" (mounting a tmpfs is refused here); ` +
        `running under a ${sc.tmpfsMiB} MiB file-size limit instead. CI requires it.`);
      mode = 'fsize';
      fsizeMiB = sc.tmpfsMiB;
    }
  }
  if (base === undefined) base = fs.mkdtempSync(path.join(scratchRoot, 'fsize-'));
  const storePath = path.join(base, 'db');
  let ballast: string | null = null;
  if (mode === 'tmpfs') {
    // 1 MiB to delete after the failure, to see writes work again once there is space
    ballast = path.join(base, 'ballast');
    fs.writeFileSync(ballast, Buffer.alloc(1 << 20, 1));
  }
  const scenario = JSON.stringify({
    options: sc.options, large: sc.large, largeBytes: sc.largeBytes, hugeAt: sc.hugeAt ?? 0, hugeBytes: sc.hugeBytes ?? 0, batchEvery: sc.batchEvery ?? 0, deleteEvery: sc.deleteEvery ?? 0,
    upsertEvery: sc.upsertEvery ?? 0, migrateEvery: sc.migrateEvery ?? 0, compactEvery: sc.compactEvery ?? 0, maxOps: 200_000, ballast,
  });
  const node = [process.execPath, CHILD, REPO_ROOT, storePath, scenario].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // dash's ulimit -f counts 512-byte blocks; the child reports the limit it got in bytes
  const shell = mode === 'fsize' ? `trap '' XFSZ; ulimit -f ${fsizeMiB! * 2048}; exec ${node}` : `exec ${node}`;
  const r = await spawnAsync('sh', ['-c', shell], { timeout: 120_000 });
  const output = `status=${r.status} signal=${r.signal}\nstderr: ${(r.stderr ?? '').slice(-3000)}\nstdout (end): ${(r.stdout ?? '').slice(-2000)}`;
  expect(r.signal, `${sc.name}: the writer was not killed by a signal (SIGBUS, SIGXFSZ, abort)\n${output}`).toBeNull();
  expect(r.status, `${sc.name}: the writer exited cleanly\n${output}`).toBe(0);
  const run: Partial<Run> = { mode, storePath, ops: [], maintenance: [], output };
  for (const line of r.stdout.split('\n')) {
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    const body = line.slice(sp + 1);
    if (tag === 'TRY') run.ops!.push({ op: JSON.parse(body) as Op, acked: false });
    else if (tag === 'ACK') run.ops![run.ops!.length - 1]!.acked = true;
    else if (tag === 'LIMITS') run.limits = JSON.parse(body);
    else if (tag === 'FAILED') run.failed = JSON.parse(body);
    else if (tag === 'MAINTENANCE_FAILED') run.maintenance!.push(JSON.parse(body));
    else if (tag === 'AFTER') run.after = JSON.parse(body);
  }
  expect(run.after, `${sc.name}: the writer got through its checks\n${output}`).toBeDefined();
  run.base = base;
  return run as Run;
}

function expectIoError(e: ErrInfo, storePath: string, what: string): void {
  expect(e.code, `${what}: ${e.message}`).toBe('IO_ERROR');
  expect(e.isTierStoreError, `${what}: a TierStoreError`).toBe(true);
  expect(e.message, `${what}: the message names a file of the store`).toContain(storePath);
  expect(e.message, `${what}: and says why`).toMatch(/No space left on device|File too large/);
}

/** Reopens the store without limits and checks it against the acknowledged operations. */
function checkReopened(run: Run, name: string): void {
  const acked = new Map<string, number>(); // id -> version (deleted ids removed)
  const uncertain: Op[] = [];
  for (const { op, acked: ok } of run.ops) {
    if (op.kind === 'migrate' || op.kind === 'compact') continue;
    if (!ok) {
      uncertain.push(op);
      continue;
    }
    for (const [id, v] of op.ids) {
      if (v < 0) acked.delete(id);
      else acked.set(id, v);
    }
  }
  expect(uncertain.length, `${name}: only failed writes are unacknowledged`).toBeLessThanOrEqual(2);
  const s = open(run.storePath);
  try {
    const all = iterateAll(s, 'all');
    const stored = new Map(all.map((m) => [m.id, m]));
    expect(stored.size, `${name}: each id once`).toBe(all.length);
    expect(s.counts().total, `${name}: counts() = iterated`).toBe(all.length);
    const versionOf = (id: string): number => {
      const m = stored.get(id);
      if (m === undefined) return 0;
      const v = (m.metadata as { v: number }).v;
      expect(m.content.startsWith(`${id}#${v}|`) && m.content.endsWith('|end'), `${name}: ${id} holds its whole content`).toBe(true);
      return v;
    };
    const inUncertain = new Set(uncertain.flatMap((op) => op.ids.map(([id]) => id)));
    const problems: string[] = [];
    for (const [id, v] of acked) {
      if (!inUncertain.has(id) && versionOf(id) !== v) problems.push(`${id}: acked v${v}, stored v${versionOf(id)}`);
    }
    for (const id of stored.keys()) {
      if (!acked.has(id) && !inUncertain.has(id)) problems.push(`${id}: stored but never acknowledged (or acknowledged deleted)`);
    }
    for (const op of uncertain) {
      // all of it or none of it
      const landed = op.ids.map(([id, v]) => (v < 0 ? !stored.has(id) : versionOf(id) === v));
      const before = op.ids.map(([id]) => versionOf(id) === (acked.get(id) ?? 0));
      const all = landed.every(Boolean);
      const none = before.every(Boolean);
      if (!all && !none) problems.push(`failed ${op.kind} #${op.n} landed in part: ${JSON.stringify(op.ids)} -> ${op.ids.map(([id]) => versionOf(id))}`);
    }
    expect(problems, `${name}: reopened store = acknowledged writes`).toEqual([]);
    // and it takes writes again
    s.put({ id: 'after-reopen', content: 'x', embedding: new Float32Array(16).fill(1) });
    expect(s.has('after-reopen')).toBe(true);
  } finally {
    s.close();
  }
}

const SCENARIOS: Scenario[] = [
  {
    name: 'tmpfs 8 MiB, hot tier only: the log fills',
    tmpfsMiB: 8, options: { hotCapacity: 1_000_000 }, large: 7, largeBytes: 200_000, batchEvery: 5, deleteEvery: 11, upsertEvery: 9,
  },
  {
    name: 'tmpfs 24 MiB, hot → warm → cold: warm chunks, the log and cold segments fill it, compaction near the limit',
    tmpfsMiB: 24, options: { hotCapacity: 20, warmCapacity: 40 }, large: 4, largeBytes: 150_000, batchEvery: 5, deleteEvery: 11, upsertEvery: 9,
    migrateEvery: 17, compactEvery: 41, expectTiers: ['warm', 'cold'],
  },
  {
    name: 'tmpfs 8 MiB, hot → cold (skipWarm) with compaction near the limit',
    tmpfsMiB: 8, options: { hotCapacity: 20, skipWarm: true }, large: 7, largeBytes: 100_000, batchEvery: 5, deleteEvery: 11, upsertEvery: 9,
    compactEvery: 37, expectTiers: ['cold'],
  },
  {
    name: 'tmpfs 4 MiB, warm cannot get its first chunks: migrate() fails, puts go on until the log fills',
    tmpfsMiB: 4, options: { hotCapacity: 20 }, large: 7, largeBytes: 100_000, batchEvery: 5, migrateEvery: 13, expectMaintenanceFailure: true,
  },
  {
    name: 'file-size limit 4 MiB, hot tier only: EFBIG on the log',
    fsizeMiB: 4, options: { hotCapacity: 1_000_000 }, large: 7, largeBytes: 200_000, batchEvery: 5, deleteEvery: 11, upsertEvery: 9,
  },
  {
    // The log is rewritten as records move down, so it stays small: the put that fails is one 9 MB record.
    name: 'file-size limit 8 MiB, hot → cold (skipWarm): compaction into one segment passes the limit, then a 9 MB record',
    fsizeMiB: 8, options: { hotCapacity: 5, skipWarm: true }, large: 2, largeBytes: 400_000, batchEvery: 5, upsertEvery: 9, compactEvery: 15,
    hugeAt: 80, hugeBytes: 9_000_000, expectMaintenanceFailure: true, expectTiers: ['cold'],
  },
  {
    name: 'file-size limit 3 MiB, warm block chunks of 4 MiB cannot be allocated: migrate() fails with EFBIG, puts go on until the log is at the limit',
    fsizeMiB: 3, options: { hotCapacity: 2 }, large: 2, largeBytes: 300_000, batchEvery: 5, migrateEvery: 5, expectMaintenanceFailure: true,
  },
];

describe('a full disk or a file-size limit: IO_ERROR, no crash, every acknowledged write kept', () => {
  it.each(SCENARIOS)('$name', async (sc) => {
    const run = await runScenario(sc);
    try {
      checkRun(sc, run);
    } finally {
      if (run.mode === 'tmpfs') unmount(run.base);
    }
  }, 120_000);
});

function checkRun(sc: Scenario, run: Run): void {
    const what = `${sc.name} (${run.mode})`;
    if (run.mode === 'fsize') {
      expect(run.limits.fileSizeLimit, `${what}: the writer ran under the limit`).toBe((sc.fsizeMiB ?? sc.tmpfsMiB)! * 1048576);
      expect(run.limits.sigxfszIgnored, `${what}: SIGXFSZ is ignored in the writer (EFBIG instead of death)`).toBe(true);
    }
    expect(run.ops.filter((o) => o.acked).length, `${what}: writes succeeded before the limit`).toBeGreaterThan(10);
    expectIoError(run.failed, run.storePath, `${what}: the failing write (#${run.failed.n})`);
    // A tmpfs run must really have hit a full disk, not some other limit.
    if (run.mode === 'tmpfs') expect(run.failed.message, `${what}: the failure is ENOSPC`).toMatch(/No space left on device/);
    for (const m of run.maintenance) expectIoError(m, run.storePath, `${what}: failing ${m.kind} (#${m.n})`);
    if (sc.expectMaintenanceFailure) expect(run.maintenance.length, `${what}: a migrate() or compact() failed`).toBeGreaterThan(0);
    // the same process afterwards
    expect(run.after.reads, `${what}: reads work after the failure`).toMatchObject({ ok: true, wrong: 0 });
    expect(run.after.reads.iterated).toBe(run.after.reads.total);
    for (const tier of sc.expectTiers ?? []) expect(run.after.reads.counts?.[tier], `${what}: ${tier} held records at the limit`).toBeGreaterThan(0);
    if (!run.after.stillFull.ok) expectIoError(run.after.stillFull, run.storePath, `${what}: a small write while still full`);
    if (run.mode === 'tmpfs') {
      expect(run.after.afterFree, `${what}: a write works once space is freed`).toMatchObject({ ok: true });
      expect(run.after.close, `${what}: close() works once space is freed`).toMatchObject({ ok: true });
    } else if (!run.after.close.ok) {
      expectIoError(run.after.close, run.storePath, `${what}: close() under the limit`);
    }
    console.log(`${what}: ${run.ops.filter((o) => o.acked).length} writes acknowledged; failed #${run.failed.n}: ${run.failed.message}; ` +
      `tiers ${JSON.stringify(run.after.reads.counts)}; ${run.maintenance.length} maintenance failures${run.maintenance[0] ? ` (first: ${run.maintenance[0].kind}: ${run.maintenance[0].message})` : ''}; ` +
      `after: small write ${run.after.stillFull.ok ? 'ok' : run.after.stillFull.message}, close ${run.after.close.ok ? 'ok' : run.after.close.message}`);
    checkReopened(run, what);
}
