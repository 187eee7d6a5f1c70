#!/usr/bin/env node
// npm test's pretest step: the suites load the addon from build/Release and
// the TypeScript from dist/ (child processes require the package root), which
// `npm test` would otherwise not rebuild, so a green run could test old code.
// This rebuilds whichever is older than its sources:
//   build/Release/tierstore.node  vs  native/core/*, native/binding/*,
//                                     binding.gyp, scripts/gyp-sources.js
//                                     (node-gyp build: incremental; rebuild
//                                     when build/ was never configured)
//   dist/                         vs  lib/**, tsconfig.json (npm run build:ts)
// and then checks again: a build that is still older than its sources fails.
//
//   node scripts/build-fresh.mjs [--check]
// --check (or TIERSTORE_TEST_NO_BUILD=1) builds nothing: it exits 1 naming
// what is stale.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const checkOnly = process.argv.includes('--check') || process.env.TIERSTORE_TEST_NO_BUILD === '1';

/** Every file under `rel` (recursively) whose name passes `keep`. */
function files(rel, keep = () => true) {
  const abs = path.join(root, rel);
  if (!fs.existsSync(abs)) return [];
  if (fs.statSync(abs).isFile()) return [abs];
  return fs.readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && keep(d.name))
    .map((d) => path.join(d.parentPath ?? d.path, d.name));
}
const newest = (list) => list.reduce((best, f) => {
  const t = fs.statSync(f).mtimeMs;
  return t > best.t ? { t, f } : best;
}, { t: -Infinity, f: undefined });
const oldest = (list) => list.reduce((best, f) => {
  const t = fs.statSync(f).mtimeMs;
  return t < best.t ? { t, f } : best;
}, { t: Infinity, f: undefined });
const rel = (f) => path.relative(root, f);

const targets = [
  {
    name: 'addon',
    sources: () => [
      ...files('native/core', (n) => /\.(cc|h)$/.test(n) && !/_(test|bench)\.cc$/.test(n)),
      ...files('native/binding'), ...files('binding.gyp'), ...files('scripts/gyp-sources.js'),
    ],
    outputs: () => files('build/Release/tierstore.node'),
    build: () => {
      const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
      // Configured, and for today's source list (a .cc added since needs a
      // new configure, or the build would silently leave it out).
      const mk = path.join(root, 'build', 'tierstore.target.mk');
      const listed = fs.existsSync(mk) ? fs.readFileSync(mk, 'utf8') : '';
      const sources = spawnSync(process.execPath, [path.join(root, 'scripts', 'gyp-sources.js')], { cwd: root, encoding: 'utf8' })
        .stdout.split('\n').filter(Boolean);
      const configured = fs.existsSync(path.join(root, 'build', 'Makefile')) && listed !== '' &&
        sources.every((src) => listed.includes(`/${src.replace(/\.cc$/, '.o')}`));
      return [process.execPath, [gyp, configured ? 'build' : 'rebuild']];
    },
  },
  {
    name: 'TypeScript (dist/)',
    sources: () => [...files('lib', (n) => /\.(ts|mts)$/.test(n)), ...files('tsconfig.json')],
    outputs: () => files('dist', (n) => /\.(js|mjs)$/.test(n)),
    build: () => ['npm', ['run', 'build:ts']],
  },
];

/** Why `t` is stale, or null when its outputs are newer than every source. */
function staleness(t) {
  const outs = t.outputs();
  if (outs.length === 0) return 'not built';
  const src = newest(t.sources());
  const out = oldest(outs);
  if (src.t > out.t) return `${rel(src.f)} is newer than ${rel(out.f)}`;
  return null;
}

let failed = false;
for (const t of targets) {
  const why = staleness(t);
  if (why === null) continue;
  if (checkOnly) {
    console.error(`[pretest] ${t.name} is older than its sources (${why}): build it (npm run build) or unset TIERSTORE_TEST_NO_BUILD`);
    failed = true;
    continue;
  }
  const [cmd, args] = t.build();
  console.log(`[pretest] ${t.name} is stale (${why}): ${path.basename(cmd)} ${args.map((a) => (a.includes('/') ? path.basename(a) : a)).join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`[pretest] building the ${t.name} failed`);
    process.exit(1);
  }
  // make skips a target it thinks is current; a build that leaves outputs
  // older than their sources would still test old code.
  const after = staleness(t);
  if (after !== null) {
    console.error(`[pretest] the ${t.name} is still older than its sources after building (${after})`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
