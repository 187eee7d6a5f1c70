// Power loss with durability 'sync' (docs/durability.md): every write that returned
// survives it. A power cut cannot be simulated by killing processes, so this
// suite traces the system calls of a script driving a store through every
// kind of operation (strace -f -y) and checks that writes, syncs, renames and
// unlinks come in an order a power cut cannot break (test/helpers/syscall-order.ts).
// The checker is itself tested first on traces that break each rule.
//
// Needs strace and ptrace. CI (.ci/run) installs strace, fails when ptrace is
// refused, and sets TIERSTORE_REQUIRE_STRACE=1; with it (or CI=true) a
// strace that cannot trace fails this suite. Elsewhere the output says that
// the traced run did not happen.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, spawnAsync } from './helpers/child.js';
import { checkPowerLossOrder, parseTrace, REPORT_MAPPINGS_JS, STRACE_ARGS } from './helpers/syscall-order.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-powerloss-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const straceWorks = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;
const required = process.env.TIERSTORE_REQUIRE_STRACE === '1' || process.env.CI === 'true';
if (!straceWorks && !required) {
  console.warn('NOT RUN: the traced power-loss runs (strace is missing or ptrace is refused here); CI requires them');
}

describe('the power-loss order checker', () => {
  const dir = '/s';
  const marker = '/m';
  const check = (trace: string) => checkPowerLossOrder(parseTrace(trace, dir, marker), dir);
  const ok = [
    '1 write(3</m>, "@@put@@", 7) = 7',
    '1 pwrite64(4</s/hot.log>, "x", 1, 0) = 1',
    '1 fdatasync(4</s/hot.log>) = 0',
    '1 write(3</m>, "@@end@@", 7) = 7',
  ];

  it('accepts a write synced before the operation returns', () => {
    expect(check(ok.join('\n')).violations).toEqual([]);
  });

  it('reports a write not synced before the operation returns', () => {
    const r = check(ok.filter((l) => !l.includes('fdatasync')).join('\n'));
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatch(/^commit: put returned with hot\.log written/);
  });

  it('joins a call split by another thread', () => {
    const trace = [
      ok[0], ok[1],
      '1 fdatasync(4</s/hot.log> <unfinished ...>',
      '2 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000',
      '1 <... fdatasync resumed>) = 0',
      ok[3],
    ].join('\n');
    expect(check(trace).violations).toEqual([]);
  });

  it('counts an msync of a shared mapping as a sync of its file', () => {
    const trace = [
      '1 write(3</m>, "@@put@@", 7) = 7',
      '1 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED, 5</s/warm.blocks>, 0) = 0x7f0000001000',
      '1 pwrite64(5</s/warm.blocks>, "x", 1, 0) = 1',
      '1 msync(0x7f0000002000, 4096, MS_SYNC) = 0',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    expect(check(trace).violations).toEqual([]);
  });

  it('reports a rename of an unsynced file and a rename whose directory is never synced', () => {
    const trace = [
      '1 write(3</m>, "@@flush@@", 9) = 9',
      '1 write(4</s/MANIFEST.tmp>, "x", 1) = 1',
      '1 rename("/s/MANIFEST.tmp", "/s/MANIFEST") = 0',
      '1 fsync(4</s/MANIFEST>) = 0',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    const v = check(trace).violations;
    expect(v.some((x) => x.startsWith('replace: flush renamed MANIFEST.tmp to MANIFEST'))).toBe(true);
    expect(v.some((x) => x.startsWith('dir: flush returned after renaming /s/MANIFEST'))).toBe(true);
  });

  it('reports a log checkpoint before a live cold segment was synced', () => {
    const trace = [
      '1 write(3</m>, "@@create@@", 10) = 10',
      '1 openat(AT_FDCWD</>, "/s/cold-00000001.seg", O_RDWR) = 6</s/cold-00000001.seg>',
      '1 write(3</m>, "@@compact@@", 11) = 11',
      '1 fdatasync(7</s/warm.blocks>) = 0',
      '1 pwrite64(8</s/hot.log.tmp>, "x", 1, 0) = 1',
      '1 fdatasync(8</s/hot.log.tmp>) = 0',
      '1 rename("/s/hot.log.tmp", "/s/hot.log") = 0',
      '1 fsync(9</s>) = 0',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    const r = check(trace);
    expect(r.violations).toEqual([
      'checkpoint: compact replaced hot.log (trace line 7) before syncing cold-00000001.seg',
    ]);
    expect(r.exercised.checkpoint).toBe(1);
  });

  it('reports a segment unlinked before the manifest stopped listing it', () => {
    const trace = [
      '1 write(3</m>, "@@move@@", 8) = 8',
      '1 unlink("/s/cold-00000001.seg") = 0',
      '1 write(4</s/MANIFEST.tmp>, "x", 1) = 1',
      '1 fsync(4</s/MANIFEST.tmp>) = 0',
      '1 rename("/s/MANIFEST.tmp", "/s/MANIFEST") = 0',
      '1 fsync(9</s>) = 0',
      '1 unlink("/s/cold-00000002.seg") = 0',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    expect(check(trace).violations).toEqual([
      'unlink: move unlinked cold-00000001.seg (trace line 2) before a MANIFEST without it was renamed in and its directory synced',
    ]);
  });

  it('reports a log append through a shared mapping left dirty (no msync) when the operation returns', () => {
    const trace = [
      '1 write(3</m>, "@@put@@", 7) = 7',
      '1 mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_SHARED, 4</s/hot.log>, 0) = 0x7f0000100000',
      '1 write(3</m>, "@@mapped=hot.log@@", 18) = 18',
      '1 write(3</m>, "@@dirty=hot.log@@", 17) = 17',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    const r = check(trace);
    expect(r.violations).toEqual([
      'mapped: put returned with hot.log written through a shared mapping and not synced (dirty pages, no msync)',
    ]);
    expect(r.exercised.mapped).toBe(1);
    // the same with the msync: the mapping is clean when put returns
    const synced = trace.replace('1 write(3</m>, "@@dirty=hot.log@@", 17) = 17\n', '');
    expect(check(synced).violations).toEqual([]);
  });

  it('allows dirty tier data between checkpoints, and reports it after an operation that replaced the log', () => {
    const dirtyWarm = ['1 write(3</m>, "@@mapped=warm.blocks@@", 22) = 22', '1 write(3</m>, "@@dirty=warm.blocks@@", 21) = 21'];
    const migrated = ['1 write(3</m>, "@@putMany@@", 11) = 11', ...dirtyWarm, '1 write(3</m>, "@@end@@", 7) = 7'];
    expect(check(migrated.join('\n')).violations).toEqual([]);
    const checkpoint = [
      '1 write(3</m>, "@@migrate@@", 11) = 11',
      '1 fdatasync(5</s/warm.blocks>) = 0',
      '1 pwrite64(8</s/hot.log.tmp>, "x", 1, 0) = 1',
      '1 fdatasync(8</s/hot.log.tmp>) = 0',
      '1 rename("/s/hot.log.tmp", "/s/hot.log") = 0',
      '1 fsync(9</s>) = 0',
      ...dirtyWarm,
      '1 write(3</m>, "@@end@@", 7) = 7',
    ];
    expect(check(checkpoint.join('\n')).violations).toEqual([
      'mapped: migrate replaced hot.log but returned with warm.blocks written through a shared mapping and not synced (dirty pages, no msync)',
    ]);
  });

  it('ignores failed calls and files outside the store', () => {
    const trace = [
      '1 write(3</m>, "@@put@@", 7) = 7',
      '1 pwrite64(4</elsewhere/hot.log>, "x", 1, 0) = 1',
      '1 rename("/s/a.tmp", "/s/a") = -1 ENOENT (No such file or directory)',
      '1 write(3</m>, "@@end@@", 7) = 7',
    ].join('\n');
    expect(check(trace).violations).toEqual([]);
  });
});

// Every public operation that writes, on a store with small capacities so
// records move through every tier, cold segments merge and compaction
// replaces the log and the warm variable-length file.
const SCRIPT = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const { open } = require(process.env.TIERSTORE_REPO);
const [dir, markerFile] = process.argv.slice(2);
const marker = fs.openSync(markerFile, 'w');
// Before each marker (so after the previous operation returned): every shared
// writable mapping of a store file, and whether it has dirty pages.
const storeDir = path.resolve(dir);
${REPORT_MAPPINGS_JS}
const mark = (name) => { reportMappings(marker, storeDir); fs.writeSync(marker, '@@' + name + '@@'); };
const emb = (i) => { const e = new Float32Array(16); e[i % 16] = 1; e[(i * 7 + 3) % 16] = 0.25; return e; };
const rec = (i, v = 0) => ({ id: 'r' + i, content: 'memory ' + i + ' version ' + v + ' ' + 'é'.repeat(i % 5),
  embedding: emb(i), metadata: { i, v } });
const opts = { dimensions: 16, hotCapacity: 4, warmCapacity: 6, durability: process.env.TIERSTORE_DURABILITY };
mark('create');
let s = open(dir, opts);
mark('put');
s.put(rec(0));
mark('putMany');
s.putMany(Array.from({ length: 30 }, (_, i) => rec(i + 1)));
mark('put-upsert');
s.put(rec(20, 1));
const byTier = { hot: [], warm: [], cold: [] };
for (const m of s.iterate()) byTier[m.tier].push(m.id);
mark('delete');
for (const t of ['hot', 'warm', 'cold']) s.delete(byTier[t][0]);
mark('move-to-cold');
for (const id of byTier.hot.slice(1).concat(byTier.warm.slice(1))) s.move(id, 'cold');
mark('move-to-warm');
s.move(byTier.cold[1], 'warm');
mark('move-to-hot');
s.move(byTier.cold[2], 'hot');
mark('get');
s.get(byTier.cold[3]);
mark('flush');
s.flush();
mark('migrate');
s.migrate();
mark('compact');
const report = s.compact();
mark('close');
s.close();
mark('reopen');
s = open(dir, { ...opts, hotCapacity: 2 });
mark('put-after-reopen');
s.putMany([rec(40), rec(41), rec(42)]);
mark('close-again');
s.close();
mark('end');
process.stdout.write(JSON.stringify({ counts: open(dir, { readOnly: true }).counts(), report }) + '\n');
`;

// The store goes on a file system that writes pages back: on tmpfs an msync
// leaves pages dirty and the mapping reports would mean nothing.
function traceDir(): string {
  const fsType = spawnSync('stat', ['-f', '-c', '%T', tmp], { encoding: 'utf8' }).stdout.trim();
  if (fsType !== 'tmpfs') return tmp;
  const d = fs.mkdtempSync(path.join(REPO_ROOT, '.powerloss-'));
  afterAll(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

async function tracedRun(durability: 'sync' | 'relaxed') {
  const base = fs.mkdtempSync(path.join(traceDir(), `${durability}-`));
  const dir = path.join(base, 'store');
  const markerFile = path.join(base, 'markers');
  const traceFile = path.join(base, 'trace.txt');
  const scriptFile = path.join(base, 'ops.cjs');
  fs.writeFileSync(scriptFile, SCRIPT);
  const r = await spawnAsync('strace', [...STRACE_ARGS, '-o', traceFile, process.execPath, scriptFile, dir, markerFile], {
    timeout: 120_000,
    env: { ...process.env, TIERSTORE_REPO: REPO_ROOT, TIERSTORE_DURABILITY: durability },
  });
  expect(r.status, r.stderr).toBe(0);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
  // 31 put, 3 deleted, 3 more put after reopen.
  expect(result.counts.total).toBe(31 - 3 + 3);
  const events = parseTrace(fs.readFileSync(traceFile, 'utf8'), dir, markerFile);
  const markers = events.filter((e) => e.kind === 'marker').map((e) => (e as { name: string }).name);
  expect(markers).toEqual([
    'create', 'put', 'putMany', 'put-upsert', 'delete', 'move-to-cold', 'move-to-warm', 'move-to-hot', 'get',
    'flush', 'migrate', 'compact', 'close', 'reopen', 'put-after-reopen', 'close-again', 'end',
  ]);
  return { events, report: checkPowerLossOrder(events, dir) };
}

describe('durability under strace', () => {
  const needStrace = () => {
    expect(straceWorks, 'strace is required here (TIERSTORE_REQUIRE_STRACE=1 or CI=true): apt-get install strace, allow ptrace').toBe(true);
  };

  it.skipIf(!straceWorks && !required)("'sync' orders writes, syncs, renames and unlinks so a power cut loses nothing that returned", async () => {
    needStrace();
    const { events, report } = await tracedRun('sync');
    if (process.env.TIERSTORE_DEBUG_TRACE) console.log(report.exercised);
    expect(report.violations).toEqual([]);
    // Each rule had real work to check: segments merged and unlinked, the log
    // and the warm var file replaced, tier data written through mappings.
    expect(report.exercised.commit).toBeGreaterThan(20);
    expect(report.exercised.replace).toBeGreaterThan(10);
    expect(report.exercised.dir).toBeGreaterThan(10);
    expect(report.exercised.checkpoint).toBeGreaterThanOrEqual(1);
    expect(report.exercised.unlink).toBeGreaterThanOrEqual(2);
    expect(report.exercised.mapped).toBeGreaterThan(20);
    const dirty = new Set(events.flatMap((e) => (e.kind === 'mapped' && e.dirty ? [path.basename(e.path)] : [])));
    expect([...dirty].some((f) => f === 'warm.blocks'), 'the mapping reports saw warm blocks written through the mapping').toBe(true);
  });

  // 'relaxed' appends small records to the hot log through a shared mapping
  // and does not msync it: the traced run of the same script must be flagged.
  // This is the checker failing on a real build that breaks the 'sync' rules.
  it.skipIf(!straceWorks && !required)("flags 'relaxed' (log appends through a mapping, no msync) as not power-loss safe", async () => {
    needStrace();
    const { report } = await tracedRun('relaxed');
    if (process.env.TIERSTORE_DEBUG_TRACE) console.log(report.violations);
    const mappedLog = report.violations.flatMap((v) => /^mapped: ([\w-]+) returned with hot\.log written through a shared mapping/.exec(v)?.[1] ?? []);
    expect(mappedLog).toEqual(expect.arrayContaining(['put', 'putMany', 'put-upsert', 'delete']));
  });
});
