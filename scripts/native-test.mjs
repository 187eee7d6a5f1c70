#!/usr/bin/env node
// The native test steps, with CMake + CTest:
//   release        build-native/       (RelWithDebInfo) and its ctest
//   asan+ubsan     build-native-asan/  (AddressSanitizer + UBSan, leak detection on)
//   tsan           build-native-tsan/  (ThreadSanitizer, halting on the first report)
//   thread-safety  the lock annotations checked with clang's -Wthread-safety
//   cmake-js       the addon built by cmake-js from CMakeLists.txt, loaded and used
//   fuzz           a libFuzzer smoke of the file parsers (scripts/fuzz-native.sh,
//                  ~10 s per target) when a clang++ with libFuzzer is installed;
//                  without one a notice says how to get it (and the step fails
//                  if TIERSTORE_REQUIRE_FUZZ=1, as in CI)
// `node scripts/native-test.mjs [step...]` runs the steps named, in this
// order, or all of them. `npm run test:native` (part of `npm test`) runs
// release and thread-safety; `npm run test:sanitizers` the other four (CI
// runs both). Exits non-zero on the first failure (configure, build, any
// test, any fuzz finding), printing which step failed.
// TIERSTORE_FUZZ_SMOKE_SECONDS sets the smoke's total.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jobs = String(Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length));

function run(step, cmd, args, env = process.env) {
  console.log(`\n[test:native] ${step}: ${cmd} ${args.join(' ')}`);
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) {
    console.error(`[test:native] FAILED (${step}): cannot run ${cmd}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    const how = result.signal ? `signal ${result.signal}` : `exit code ${result.status}`;
    console.error(`[test:native] FAILED (${step}): ${cmd} ended with ${how}`);
    process.exit(result.status || 1);
  }
}

function runCaptured(cmd, args, env = process.env) {
  return spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

// ThreadSanitizer's runtime (gcc 12's libtsan) aborts at start-up with
// "unexpected memory mapping" on kernels that randomise mmap with more bits
// than it expects. Probe one test binary; if that is what happens, run the
// tests with address-space randomisation off (setarch -R), which TSan
// handles. Returns the command prefix to run ctest with.
function tsanLauncher(dir, env) {
  const probe = path.join(root, dir, 'similarity_test');
  if (!fs.existsSync(probe)) return [];
  const direct = runCaptured(probe, [], env);
  const output = `${direct.stdout}${direct.stderr}`;
  if (direct.status === 0 || !/unexpected memory mapping|FATAL: ThreadSanitizer/.test(output)) return [];
  const arch = os.machine ? os.machine() : process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  const viaSetarch = runCaptured('setarch', [arch, '-R', probe], env);
  if (viaSetarch.status === 0) {
    console.log(`[test:native] tsan: the TSan runtime rejects this kernel's address-space layout; running under setarch ${arch} -R`);
    return ['setarch', arch, '-R'];
  }
  console.error(`[test:native] tsan: the TSan runtime cannot start here, even under setarch -R:\n${output}`);
  return [];
}

const variants = [
  { name: 'release', dir: 'build-native', cmakeArgs: ['-DCMAKE_BUILD_TYPE=RelWithDebInfo'], env: {} },
  {
    name: 'asan+ubsan',
    dir: 'build-native-asan',
    cmakeArgs: ['-DCMAKE_BUILD_TYPE=Debug', '-DTIERSTORE_SANITIZE=ON'],
    env: {
      ASAN_OPTIONS: ['detect_leaks=1', 'abort_on_error=1', 'strict_string_checks=1', process.env.ASAN_OPTIONS]
        .filter(Boolean)
        .join(':'),
      UBSAN_OPTIONS: ['print_stacktrace=1', 'halt_on_error=1', process.env.UBSAN_OPTIONS].filter(Boolean).join(':'),
    },
  },
  {
    name: 'tsan',
    dir: 'build-native-tsan',
    // Optimised: TSan slows the tests 5-15x, and -O2 with debug info still
    // gives exact stacks in its reports.
    cmakeArgs: ['-DCMAKE_BUILD_TYPE=RelWithDebInfo', '-DTIERSTORE_TSAN=ON'],
    env: {
      TSAN_OPTIONS: ['halt_on_error=1', 'second_deadlock_stack=1', process.env.TSAN_OPTIONS].filter(Boolean).join(':'),
    },
    launcher: tsanLauncher,
  },
];

// CTest shows a passing test's output only on failure, so the SIMD kernels
// that ran (each forced in turn) and those this CPU lacks are printed here:
// a green run on a CPU without AVX-512 says the AVX-512 kernel did not run.
function reportKernels(dir, env) {
  const r = runCaptured(path.join(root, dir, 'similarity_test'), [], env);
  const lines = `${r.stdout}`.split('\n').filter((l) => /^(NOT RUN: kernel|kernel \w+: run)/.test(l));
  if (r.status !== 0 || !lines.some((l) => l.startsWith('kernel scalar: run'))) {
    console.error(`[test:native] FAILED (SIMD kernels): similarity_test did not report its kernels\n${r.stdout}${r.stderr}`);
    process.exit(1);
  }
  console.log(`\n[test:native] SIMD kernels:\n${lines.map((l) => `  ${l}`).join('\n')}`);
}

const steps = [...variants.map((v) => v.name), 'thread-safety', 'cmake-js', 'fuzz'];
// The steps to run: those named (by name, or a variant by its directory),
// every step when none is.
const selected = new Set(process.argv.slice(2));
for (const s of selected) {
  if (!steps.includes(s) && !variants.some((v) => v.dir === s)) {
    console.error(`[test:native] unknown step '${s}'; steps: ${steps.join(', ')}`);
    process.exit(2);
  }
}
const wants = (step, dir) => selected.size === 0 || selected.has(step) || (dir !== undefined && selected.has(dir));
const started = Date.now();
const timings = [];
for (const v of variants) {
  if (!wants(v.name, v.dir)) continue;
  const t0 = Date.now();
  const env = { ...process.env, ...v.env };
  run(`${v.name} configure`, 'cmake', ['-S', '.', '-B', v.dir, ...v.cmakeArgs]);
  run(`${v.name} build`, 'cmake', ['--build', v.dir, '--parallel', jobs]);
  const launcher = v.launcher ? v.launcher(v.dir, env) : [];
  const ctestArgs = ['--test-dir', v.dir, '--output-on-failure', '--no-tests=error', '--parallel', jobs];
  if (launcher.length > 0) run(`${v.name} ctest`, launcher[0], [...launcher.slice(1), 'ctest', ...ctestArgs], env);
  else run(`${v.name} ctest`, 'ctest', ctestArgs, env);
  timings.push(`${v.name} ${Math.round((Date.now() - t0) / 1000)} s`);
  if (v.name === 'release') reportKernels(v.dir, env);
}
// The lock annotations of native/core (thread_annotations.h), checked by
// clang's -Wthread-safety with warnings as errors. Needs clang++: without
// one the step fails (CI installs clang-16 for the fuzz smoke anyway).
if (wants('thread-safety')) {
  const t0 = Date.now();
  const clang = ['clang++-16', 'clang++-15', 'clang++-14', 'clang++'].find(
    (c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0,
  );
  if (!clang) {
    console.error('[test:native] FAILED (thread-safety): no clang++ (16, 15, 14) found; install it with: apt-get install clang-16');
    process.exit(1);
  }
  const dir = 'build-native-thread-safety';
  run('thread-safety configure', 'cmake', ['-S', '.', '-B', dir, `-DCMAKE_CXX_COMPILER=${clang}`, '-DCMAKE_BUILD_TYPE=Debug', '-DTIERSTORE_THREAD_SAFETY=ON']);
  run('thread-safety build', 'cmake', ['--build', dir, '--parallel', jobs, '--target', 'tierstore_core']);
  timings.push(`thread-safety ${Math.round((Date.now() - t0) / 1000)} s`);
}
// The developer build of the addon: cmake-js drives the same CMakeLists.txt
// (same sources as binding.gyp); the result must load and work.
if (wants('cmake-js')) {
  const t0 = Date.now();
  const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  run('cmake-js addon build', process.execPath, [cmakeJs, 'build', '--out', 'build-cmake-js', '--target', 'tierstore_addon']);
  const smoke = `
    const a = require(${JSON.stringify(path.join(root, 'build-cmake-js', 'Release', 'tierstore.node'))});
    const fs = require('fs'), os = require('os'), path = require('path');
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-cmake-js-'));
    const s = new a.NativeStore(d, 3, false, 10, 10, false, false);
    s.putMany(Buffer.from('idcontent{}', 'utf16le'), new Uint32Array([2, 7, 2]), new Float32Array([1, 2, 3]),
      new Float64Array([0.5, 0.5, 1, 1]), 1000);
    const scalars = new Float64Array(6);
    const ok = s.get('id', false, scalars)[0] === 'content' && scalars[0] === 0.5 && s.counts().total === 1;
    s.close();
    fs.rmSync(d, { recursive: true, force: true });
    if (!ok) { console.error('the cmake-js addon returned wrong data'); process.exit(1); }`;
  run('cmake-js addon loads', process.execPath, ['-e', smoke]);
  timings.push(`cmake-js ${Math.round((Date.now() - t0) / 1000)} s`);
}
// The libFuzzer smoke: every fuzz target for a few seconds (the long run is
// `npm run fuzz:native` / `npm run stress`). Needs clang++ with libFuzzer.
if (wants('fuzz')) {
  const t0 = Date.now();
  const fuzzScript = path.join(root, 'scripts', 'fuzz-native.sh');
  const check = spawnSync('bash', [fuzzScript, '--check'], { cwd: root, stdio: 'ignore' });
  if (check.status === 0) {
    const seconds = process.env.TIERSTORE_FUZZ_SMOKE_SECONDS || '60';
    run('libFuzzer smoke', 'bash', [fuzzScript, seconds]);
    timings.push(`fuzz ${Math.round((Date.now() - t0) / 1000)} s`);
  } else {
    const lines = [
      'NOTICE: the libFuzzer smoke of the native file parsers was SKIPPED:',
      'no clang++ (16, 15, 14) that links -fsanitize=fuzzer is installed.',
      'Install it with:  sudo apt-get install clang-16 libclang-rt-16-dev',
      'or run `npm run fuzz:native`, which installs it and fuzzes for 60 s.',
      'CI always runs the smoke (.ci/run installs clang first).',
    ];
    const width = Math.max(...lines.map((l) => l.length));
    const bar = '!'.repeat(width + 4);
    console.error(`\n${bar}\n${lines.map((l) => `! ${l.padEnd(width)} !`).join('\n')}\n${bar}\n`);
    if (process.env.TIERSTORE_REQUIRE_FUZZ === '1') {
      console.error('[test:native] FAILED (libFuzzer smoke): TIERSTORE_REQUIRE_FUZZ=1 but clang++ with libFuzzer is missing');
      process.exit(1);
    }
  }
}
console.log(`\n[test:native] all native tests passed in ${Math.round((Date.now() - started) / 1000)} s (${timings.join(', ')})`);
