#!/usr/bin/env node
// npm run test:package — the package as a user gets it, with no compiler:
//   1. builds the linux-x64 Node-API prebuild (npm run prebuild),
//   2. packs the tarball (npm pack) and checks what is inside and its size,
//   3. installs it into an empty project with a PATH that holds node, npm and
//      sh only (no cc, c++, g++, make, python3), so a source build would fail,
//   4. imports and requires it there, opens a store, puts, gets, recalls and scans into Arrow,
//   5. type-checks an ESM and a CommonJS consumer against the installed types.
// Exits non-zero, saying which step failed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAX_TARBALL_BYTES = 2 * 1024 * 1024;

function fail(step, message) {
  console.error(`[test:package] FAILED (${step}): ${message}`);
  process.exit(1);
}

function run(step, cmd, args, options = {}) {
  console.log(`[test:package] ${step}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.error) fail(step, `cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(step, `exit ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const npm = (step, args, options) =>
  run(step, process.execPath, [fs.existsSync(npmCli) ? npmCli : fs.realpathSync(findOnPath('npm')), ...args], options);

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  fail('setup', `${name} is not on PATH`);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-package-'));
try {
  // 1. The prebuild.
  npm('prebuild', ['run', 'prebuild'], { cwd: root });
  const prebuilt = fs.readdirSync(path.join(root, 'prebuilds', `${process.platform}-${process.arch}`));
  if (!prebuilt.some((f) => f.endsWith('.node'))) fail('prebuild', `no .node file in prebuilds/: ${prebuilt}`);

  // 2. The tarball.
  const packed = JSON.parse(npm('pack', ['pack', '--json', '--pack-destination', work], { cwd: root }))[0];
  const tarball = path.join(work, packed.filename);
  const files = packed.files.map((f) => f.path);
  console.log(`[test:package] ${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${files.length} files`);
  const forbidden = files.filter((f) => /^(test|bench|native\/test|native\/bench|build|\.ci|\.tmp)\//.test(f) || f.endsWith('.tgz'));
  if (forbidden.length > 0) fail('pack', `the tarball holds files not needed at run time: ${forbidden.join(', ')}`);
  for (const needed of ['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'binding.gyp', 'package.json']) {
    if (!files.includes(needed)) fail('pack', `the tarball lacks ${needed}`);
  }
  if (!files.some((f) => f.startsWith('prebuilds/') && f.endsWith('.node'))) fail('pack', 'the tarball holds no prebuild');
  if (packed.size > MAX_TARBALL_BYTES) fail('pack', `the tarball is ${packed.size} bytes, over ${MAX_TARBALL_BYTES}`);

  // 3. Install with no compiler reachable.
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(findOnPath('sh'), path.join(bin, 'sh'));
  fs.writeFileSync(path.join(bin, 'npm'), `#!${findOnPath('sh')}\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: bin, npm_config_build_from_source: '' };
  for (const tool of ['cc', 'c++', 'g++', 'gcc', 'make', 'python3', 'python']) {
    const probe = spawnSync(tool, ['--version'], { env });
    if (!probe.error) fail('setup', `${tool} is still reachable on the stripped PATH`);
  }
  const project = path.join(work, 'consumer');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  run('install', path.join(bin, 'npm'), ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, env });
  if (fs.existsSync(path.join(project, 'node_modules', 'tierstore', 'build'))) {
    fail('install', 'the install compiled the addon (node_modules/tierstore/build exists) instead of loading the prebuild');
  }

  // 4. import and require, open, put, get, recall.
  const use = (kind) => `
    const dir = process.argv[2];
    const store = tierstore.open(dir + '/${kind}', { dimensions: 3 });
    store.put({ id: 'a', content: 'via ${kind} ✓', embedding: [1, 0, 0] });
    store.putMany([{ id: 'b', content: 'b', embedding: [0, 1, 0] }, { id: 'c', content: 'c', embedding: [1, 1, 0] }]);
    const got = store.get('a');
    const hits = store.recall([1, 0.1, 0], { k: 2 });
    let code;
    try { store.put({ id: '', content: '', embedding: [1, 2, 3] }); } catch (e) { code = e instanceof tierstore.TierStoreError && e.code; }
    // arrow() loads apache-arrow from the installed dependencies.
    let arrowRows = 0;
    for (const batch of store.iterate({ filter: { metadata: {} } }).arrow()) arrowRows += batch.numRows;
    store.close();
    console.log(JSON.stringify({ content: got.content, tier: got.tier, hits: hits.map((h) => h.id), code, arrowRows }));`;
  fs.writeFileSync(path.join(project, 'use.mjs'), `import * as tierstore from 'tierstore';${use('esm')}`);
  fs.writeFileSync(path.join(project, 'use.cjs'), `const tierstore = require('tierstore');${use('cjs')}`);
  for (const [file, kind] of [['use.mjs', 'esm'], ['use.cjs', 'cjs']]) {
    const out = JSON.parse(run(`use (${kind})`, path.join(bin, 'node'), [file, work], { cwd: project, env }).trim());
    const want = { content: `via ${kind} ✓`, tier: 'hot', hits: ['a', 'c'], code: 'INVALID_ARGUMENT', arrowRows: 3 };
    if (JSON.stringify(out) !== JSON.stringify(want)) fail(`use (${kind})`, `got ${JSON.stringify(out)}, want ${JSON.stringify(want)}`);
  }

  // 5. Types for an ESM and a CommonJS consumer of the installed package.
  for (const f of ['esm-consumer.mts', 'cjs-consumer.cts']) {
    fs.copyFileSync(path.join(root, 'test', 'fixtures', f), path.join(project, f));
  }
  // @types/node for tsc: the consumer may already have it (a dependency of
  // apache-arrow); otherwise borrow the repository's.
  const types = path.join(project, 'node_modules', '@types');
  if (!fs.existsSync(types)) {
    fs.symlinkSync(path.join(root, 'node_modules', '@types'), types, 'dir');
  } else if (!fs.existsSync(path.join(types, 'node'))) {
    fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(types, 'node'), 'dir');
  }
  run('types', process.execPath, [
    path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--target', 'ES2022',
    '--module', 'node16', '--moduleResolution', 'node16', '--types', 'node', 'esm-consumer.mts', 'cjs-consumer.cts',
  ], { cwd: project });

  console.log(`[test:package] ok: ${packed.filename} (${(packed.size / 1024).toFixed(0)} KiB) installs with no compiler, loads its prebuild, works from import and require, and its types check for ESM and CommonJS consumers`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
