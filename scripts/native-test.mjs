#!/usr/bin/env node
// npm run test:native — builds and runs the C++ tests of native/core twice:
//   1. build-native/       (RelWithDebInfo)
//   2. build-native-asan/  (AddressSanitizer + UBSan, leak detection on)
// with CMake + CTest. Exits non-zero on the first failure (configure, build
// or any test), printing which step failed.
import { spawnSync } from 'node:child_process';
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
];

const only = process.argv[2]; // optional: 'release' or 'asan+ubsan'
for (const v of variants) {
  if (only && only !== v.name && only !== v.dir) continue;
  const env = { ...process.env, ...v.env };
  run(`${v.name} configure`, 'cmake', ['-S', '.', '-B', v.dir, ...v.cmakeArgs]);
  run(`${v.name} build`, 'cmake', ['--build', v.dir, '--parallel', jobs]);
  run(`${v.name} ctest`, 'ctest', ['--test-dir', v.dir, '--output-on-failure', '--no-tests=error', '--parallel', jobs], env);
}
// The developer build of the addon: cmake-js drives the same CMakeLists.txt
// (same sources as binding.gyp); the result must load and work.
if (!only || only === 'cmake-js') {
  const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  run('cmake-js addon build', process.execPath, [cmakeJs, 'build', '--out', 'build-cmake-js', '--target', 'tierstore_addon']);
  const smoke = `
    const a = require(${JSON.stringify(path.join(root, 'build-cmake-js', 'Release', 'tierstore.node'))});
    const fs = require('fs'), os = require('os'), path = require('path');
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-cmake-js-'));
    const s = new a.NativeStore(d, 3, false, 10, 10, false, false);
    s.putMany(Buffer.from('idcontent{}'), new Uint32Array([2, 7, 2]), new Float32Array([1, 2, 3]),
      new Float32Array([0.5]), new Float32Array([0.5]), new Float64Array([1]), new Float64Array([1]));
    const ok = s.get('id', false).content === 'content' && s.counts().total === 1;
    s.close();
    fs.rmSync(d, { recursive: true, force: true });
    if (!ok) { console.error('the cmake-js addon returned wrong data'); process.exit(1); }`;
  run('cmake-js addon loads', process.execPath, ['-e', smoke]);
}
console.log('\n[test:native] all native tests passed');
