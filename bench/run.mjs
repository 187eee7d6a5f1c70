#!/usr/bin/env node
// tierstore benchmark suite: tierstore against its peers on one workload.
// Method and latest results: docs/benchmarks.md.
//
//   node bench/run.mjs [--n 100000] [--only a,b] [--json path] [--repeat 1]
//                      [--smoke] [--queries 10] [--gets 10000] [--puts 10000]
//                      [--dir /tmp] [--keep] [--seed N]
//                      [--reopen-reps 3] [--reopen-scale 10]
//
// Each store runs in its own child process (bench/runner.mjs), one after the
// other, on byte-identical data generated from one seed. A 'reference' child
// computes the expected answers from the generator alone; before any figure is
// printed every store's answers are checked against it (bench/check.mjs): an
// exact order-independent digest of every record (id, content, metadata,
// scalars, every embedding bit) read by iteration, batches() and get, the
// tier every record was read from, and one top-10 per query. Any
// disagreement, a missing answer, or any store failing, exits 1.

import { fork, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORES, PEERS } from './stores.mjs';
import { checkRun as checkStore, checkReopens, checkReopenScaled } from './check.mjs';
import { OPS_INFO, OP_ALIASES, TS_COLUMNS, ratioOf, referenceRatios, renderReferenceTable, renderTable } from './report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

// ---- flags -----------------------------------------------------------------

function parseArgs(argv) {
  const a = { n: undefined, only: [], json: undefined, repeat: 1, smoke: false, keep: false, native: undefined };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const val = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--n': a.n = parseCount(val()); break;
      case '--only': a.only.push(...val().split(',').map((s) => s.trim()).filter(Boolean)); break;
      case '--json': a.json = val(); break;
      case '--repeat': a.repeat = parseCount(val()); break;
      case '--queries': a.queries = parseCount(val()); break;
      case '--gets': a.gets = parseCount(val()); break;
      case '--puts': a.puts = parseCount(val()); break;
      case '--seed': a.seed = parseCount(val()); break;
      case '--reopen-reps': a.reopenReps = parseCount(val()); break;
      case '--reopen-scale': { const v = val(); a.reopenScale = v === '0' ? 0 : parseCount(v); break; }
      case '--dir': a.dir = val(); break;
      case '--keep': a.keep = true; break;
      case '--smoke': a.smoke = true; break;
      case '--native': a.native = true; break;
      case '--no-native': a.native = false; break;
      case '-h': case '--help': usage(0); break;
      default: console.error(`unknown flag ${argv[i]}`); usage(2);
    }
  }
  return a;
}
function parseCount(s) {
  const v = Number(String(s).replace(/_/g, '').replace(/k$/i, '000').replace(/m$/i, '000000'));
  if (!Number.isInteger(v) || v < 1) { console.error(`not a positive integer: ${s}`); process.exit(2); }
  return v;
}
function usage(code) {
  console.log(`usage: node bench/run.mjs [--n N] [--only STORES|OPS] [--json PATH] [--repeat R] [--smoke]
  --n N          records (default 100000; --smoke: 2000). 1m works: every child streams.
  --only LIST    comma list of stores (${STORES.join(', ')}, or 'tierstore*', 'peers')
                 and/or ops (${[...Object.keys(OPS_INFO), ...Object.keys(OP_ALIASES)].join(', ')}); bulk insert and the
                 iteration count always run.
  --json PATH    where to write every figure (default .tmp/bench/latest.json)
  --repeat R     run each store R times; figures are medians (default 1)
  --smoke        tiny and quick (CI): N 2000, 3 queries, 500 gets, 200 puts; exits 0 only
                 if every correctness cross-check passes
  --native / --no-native  build and run the C reference loop (native/bench/scan_bench, CMake)
                 on the same N and compare recall with it (default: on when recall runs, off with --smoke)
  --reopen-reps R  reopens in new processes per store, each with the files cached and with
                 the page cache of the store's files dropped; medians (default 3; --smoke: 1)
  --reopen-scale S  also reopen a default tierstore of S × N records, built for it alone
                 (default 10 when N <= 100000, else off; --smoke: off; 0 or 1: off)
  --queries Q  --gets G  --puts P  --seed S  --dir DIR (where stores are created)  --keep`);
  process.exit(code);
}

const args = parseArgs(process.argv.slice(2));
const n = args.n ?? (args.smoke ? 2000 : 100000);
const childOpts = {
  queries: args.queries ?? (args.smoke ? 3 : n > 300000 ? 5 : 10),
  gets: args.gets ?? (args.smoke ? 500 : 10000),
  puts: args.puts ?? (args.smoke ? 200 : 10000),
  ...(args.seed !== undefined ? { seed: args.seed } : {}),
  ...(args.dir ? { dir: path.resolve(args.dir) } : {}),
  keep: args.keep,
  reopenReps: args.reopenReps ?? (args.smoke ? 1 : 3),
};

let stores = [];
let ops = [];
for (const t of args.only) {
  if (t === 'tierstore*' || t === 'ts') stores.push(...STORES.filter((s) => s.startsWith('tierstore')));
  else if (t === 'peers') stores.push(...PEERS);
  else if (STORES.includes(t)) stores.push(t);
  else if (OPS_INFO[t]) ops.push(t);
  else if (OP_ALIASES[t]) ops.push(...OP_ALIASES[t]);
  else { console.error(`--only: unknown store or op '${t}'`); usage(2); }
}
if (stores.length === 0) stores = [...STORES];
stores = [...new Set(stores)];
const opsArg = ops.length ? [...new Set(ops.flatMap((o) => OPS_INFO[o].runs ?? [o]))].join(',') : 'all';
const jsonPath = path.resolve(args.json ?? path.join(ROOT, '.tmp', 'bench', 'latest.json')); // .tmp/ is gitignored
// The larger store costs scale × N inserts: on by default only where that stays small.
const scale = args.reopenScale ?? (args.smoke || n > 100000 ? 0 : 10);
const wantsScaled = scale > 1 && stores.includes('tierstore') && (opsArg === 'all' || opsArg.split(',').includes('reopen'));

// ---- machine ---------------------------------------------------------------

function git(...a) {
  try { return execFileSync('git', a, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return undefined; }
}
function pkgVersion(name) {
  try { return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version; } catch { return undefined; }
}
const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model?.trim(),
  cores: cpus.length,
  memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
  node: process.version,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  date: new Date().toISOString(),
  loadavgStart: os.loadavg().map((x) => +x.toFixed(2)),
  commit: git('rev-parse', '--short', 'HEAD'),
  dirty: git('status', '--porcelain', '--untracked-files=no', '--', 'lib', 'native')?.length > 0,
  peers: { lmdb: pkgVersion('lmdb'), 'better-sqlite3': pkgVersion('better-sqlite3'), 'classic-level': pkgVersion('classic-level') },
};

// ---- progress --------------------------------------------------------------

const tty = process.stderr.isTTY;
let status = '';
function showProgress(text) {
  if (!tty) return;
  status = text;
  process.stderr.write(`\r\x1b[K${text}`);
}
function log(line) {
  if (tty && status) process.stderr.write('\r\x1b[K');
  console.error(line);
  if (tty && status) process.stderr.write(status);
}
const fmtInt = (x) => Math.round(x).toLocaleString('en-US');

function runChild(store, run, { records = n, runOps = opsArg, label = store } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = fork(path.join(HERE, 'runner.mjs'), [store, String(records), runOps, JSON.stringify(childOpts)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result;
    child.on('message', (m) => {
      if (m.type === 'progress') {
        const el = ((Date.now() - t0) / 1000).toFixed(0);
        const frac = m.total > 1 ? ` ${fmtInt(m.done)}/${fmtInt(m.total)}` : '';
        const total = ((Date.now() - began) / 1000).toFixed(0);
        showProgress(`[${label}${args.repeat > 1 ? ` run ${run + 1}/${args.repeat}` : ''}] ${m.phase}${frac}  ${el}s (total ${total}s)`);
      } else result = m;
    });
    child.on('exit', (code, signal) => {
      const s = ((Date.now() - t0) / 1000).toFixed(1);
      if (tty) process.stderr.write('\r\x1b[K');
      status = '';
      if (!result) result = { type: 'error', store, message: `child exited with ${signal ?? code} and no result` };
      if (result.type === 'error') log(`  ${label}: FAILED after ${s}s: ${result.message.split('\n')[0]}`);
      else log(`  ${label}: done in ${s}s${result.notes?.length ? ` (${result.notes.join('; ')})` : ''}`);
      resolve(result);
    });
  });
}

// ---- checks ----------------------------------------------------------------

const failures = [];
const warnings = [];
function fail(store, what) { failures.push(`${store}: ${what}`); }

function checkRun(store, r, refChecks) {
  for (const f of checkStore(store, r, refChecks, n, opsArg)) failures.push(f);
  for (const f of checkReopens(store, r, n, opsArg)) failures.push(f);
}

// ---- main ------------------------------------------------------------------

const began = Date.now();
console.error(`tierstore bench: N=${fmtInt(n)}, 768 dims, stores ${stores.join(', ')}${ops.length ? `, ops ${ops.join(', ')}` : ''}${args.repeat > 1 ? `, ${args.repeat} runs each` : ''}`);
console.error(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, load ${machine.loadavgStart.join(' ')}`);
if (machine.loadavgStart[0] > 0.7) console.error('warning: the machine is busy (load average above 0.7): figures will be noisy');

const ref = await runChild('reference', 0);
if (ref.type === 'error') { console.error('reference failed'); process.exit(1); }
// Repeats go round-robin (every store once, then every store again), so a
// slow phase of the machine does not fall on all runs of one store; and the
// dirty pages a run left behind are written back (untimed) before the next
// starts, so no store pays for its predecessor's writeback.
const runs = Object.fromEntries(stores.map((store) => [store, []]));
const failed = new Set();
const settle = () => { try { execFileSync('sync', [], { stdio: 'ignore' }); } catch { /* no sync(1): go on */ } };
for (let r = 0; r < args.repeat; r++) {
  for (const store of stores) {
    if (failed.has(store)) continue;
    settle();
    const res = await runChild(store, r);
    runs[store].push(res);
    if (res.type === 'error') { fail(store, `run failed: ${res.message}`); failed.add(store); continue; }
    checkRun(store, res, ref.checks);
  }
}
// The larger store is built once whatever --repeat says: building it is the
// costly part, and its reopens are repeated inside it (--reopen-reps).
let scaled;
if (wantsScaled && !failed.has('tierstore')) {
  settle();
  const records = scale * n;
  const res = await runChild('tierstore', 0, { records, runOps: 'reopen-only', label: `tierstore at ${fmtInt(records)}` });
  scaled = { scale, n: records, run: res };
  if (res.type === 'error') fail('tierstore', `reopen at ${records} records failed: ${res.message}`);
  else for (const f of checkReopenScaled('tierstore', res, records, childOpts.reopenReps)) failures.push(f);
}
showProgress('');
if (tty) process.stderr.write('\r\x1b[K');

// ---- the C reference loop, in the same run ------------------------------------

// Builds native/bench/scan_bench (CMake, Release) and runs it over an N x 768
// matrix: the plain AVX2 loop recall is measured against, on 1 and 2 threads, on huge and on
// 4 KiB pages, next to the memory bandwidth. Returns its JSON, or undefined
// with a note when CMake or a compiler is missing.
function runScanBench() {
  const build = path.join(ROOT, 'build-bench');
  // Beside the build, not the results: a --json path inside the repository
  // would otherwise leave a stray scan_bench.json there (its figures go into
  // the results JSON as cReference anyway).
  const out = path.join(build, 'scan_bench.json');
  try {
    log('  C reference loop: building native/bench/scan_bench (cmake, Release)');
    execFileSync('cmake', ['-S', ROOT, '-B', build, '-DCMAKE_BUILD_TYPE=Release'], { stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('cmake', ['--build', build, '-j2', '--target', 'scan_bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
    mkdirSync(path.dirname(out), { recursive: true });
    const t0 = Date.now();
    execFileSync(path.join(build, 'scan_bench'), ['--n', String(n), '--dims', '768', '--reps', '9', '--threads', '1,2', '--json', out],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    log(`  C reference loop: done in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    return JSON.parse(readFileSync(out, 'utf8'));
  } catch (e) {
    warnings.push(`C reference loop not run (${e.message.split('\n')[0]}); install cmake and a C++ compiler, or pass --no-native`);
    return undefined;
  }
}
const wantsRecall = opsArg === 'all' || opsArg.split(',').some((o) => o.startsWith('recall'));
const scanBench = (args.native ?? (!args.smoke && wantsRecall)) ? runScanBench() : undefined;

// medians over repeats
const median = (xs) => {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (!a.length) return undefined;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
const figures = {};
const unmeasured = {}; // store -> figure key -> why this system could not measure it
for (const store of stores) {
  const ok = runs[store].filter((r) => r.type === 'result');
  if (!ok.length) continue;
  figures[store] = {};
  for (const key of Object.keys(OPS_INFO)) {
    const v = median(ok.map((r) => r.figures[key]));
    if (v !== undefined) figures[store][key] = v;
  }
  for (const r of ok) {
    for (const [key, why] of Object.entries(r.unmeasured ?? {})) {
      if (figures[store][key] === undefined) (unmeasured[store] ??= {})[key] = why;
    }
  }
}
if (scaled?.run.type === 'result' && figures.tierstore) {
  for (const [key, v] of Object.entries(scaled.run.figures)) {
    if (key.startsWith('reopen-')) figures.tierstore[key.replace(/^reopen-/, 'reopen-scaled-')] = v;
  }
  for (const [key, why] of Object.entries(scaled.run.unmeasured ?? {})) {
    (unmeasured.tierstore ??= {})[key.replace(/^reopen-/, 'reopen-scaled-')] = why;
  }
}
const reopenScale = scaled ? { scale: scaled.scale, n: scaled.n } : undefined;
const ratios = {};
for (const [key, info] of Object.entries(OPS_INFO)) {
  for (const ts of TS_COLUMNS) {
    const r = ratioOf(figures, ts, key, info);
    if (r) (ratios[ts] ??= {})[key] = r;
  }
}

for (const w of warnings) console.error(`warning: ${w}`);
const byNote = new Map();
for (const r of Object.values(runs).flat()) for (const x of r.notes ?? []) byNote.set(x, new Set([...(byNote.get(x) ?? []), r.store]));
const notes = [...byNote].map(([x, s]) => `${x} (${[...s].join(', ')})`);
for (const x of notes) console.error(`note: ${x}`);
machine.loadavgEnd = os.loadavg().map((x) => +x.toFixed(2));
const seconds = (Date.now() - began) / 1000;

const cReference = scanBench ? referenceRatios(scanBench, figures) : undefined;
const out = {
  machine, n, dimensions: 768, config: { ...childOpts, repeat: args.repeat, smoke: args.smoke, stores, ops: opsArg, reopenScale: scale },
  ...(scanBench ? { scanBench, cReference } : {}),
  ...(scaled ? { reopenScale: { ...reopenScale, run: scaled.run } } : {}),
  unmeasured,
  reference: { logicalBytes: ref.checks.logicalBytes, iter: ref.checks.iter, encodeFloor: ref.figures?.encodeFloor, copyFloor: ref.figures?.copyFloor },
  figures, ratios, runs, checks: { ok: failures.length === 0, failures, warnings, notes }, seconds,
};
mkdirSync(path.dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, JSON.stringify(out, null, 1) + '\n');
const rel = path.relative(process.cwd(), jsonPath);

// Figures are printed only once every answer has been checked.
if (failures.length) {
  console.error(`\nCROSS-CHECK FAILED (${failures.length}); no figures printed (they are in ${rel}, untrustworthy):`);
  for (const f of failures.slice(0, 50)) console.error(`  ${f}`);
  process.exit(1);
}
console.log('');
console.log(renderTable({ figures, ratios, stores, n, machine, unmeasured, reopenScale }));
if (cReference) {
  console.log('');
  console.log(renderReferenceTable(cReference));
}
const floor = ref.figures?.encodeFloor;
const copyFloor = ref.figures?.copyFloor;
if (floor) {
  console.log('');
  const ins = figures.tierstore?.insert;
  const of = (x) => (ins ? `; tierstore's bulk insert is ${(ins / x).toFixed(2)}× of it` : '');
  console.log(`JS encoding floor for a bulk insert: ${fmtInt(floor)} records/s (id, content and metadata JSON to UTF-8 and the embedding copied, no store, no validation; median of 3 passes)` + of(floor));
  if (copyFloor) {
    console.log(`JS copy floor for a bulk insert: ${fmtInt(copyFloor)} records/s (the same with the strings copied out as UTF-16, the least any store pays to read them)` + of(copyFloor));
  }
}
console.log('');
console.log(`all cross-checks passed: every record (id, content, metadata, scalars, embedding bits) read by iteration, batches() and get, the tiers, and one top-10 per query of every store agree with the JS brute-force reference. ${seconds.toFixed(0)}s. JSON: ${rel}`);
if (machine.loadavgStart[0] > 0.7 || machine.loadavgEnd[0] > 1.5) console.log(`load average ${machine.loadavgStart.join(' ')} → ${machine.loadavgEnd.join(' ')}: other work shared the machine; figures are noisy.`);
