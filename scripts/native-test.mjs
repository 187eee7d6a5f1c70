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
console.log('\n[test:native] all native tests passed');
