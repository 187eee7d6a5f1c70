// The built package (dist/, build/): `require('tierstore')` and
// `import 'tierstore'` from a consumer process, and type-checking of an ESM
// and a CommonJS consumer plus the expectTypeOf assertions of
// binding-types.test.ts. Needs `npm run build` (npm ci runs it).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = path.join(root, 'test', 'fixtures');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-pkg-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function node(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('package entry points', () => {
  it('package.json exports map import/require with types', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(pkg.exports['.'].import).toEqual({ types: './dist/index.d.mts', default: './dist/index.mjs' });
    expect(pkg.exports['.'].require).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/index.mjs', 'dist/index.d.mts']) {
      expect(fs.existsSync(path.join(root, f)), `${f} (run npm run build)`).toBe(true);
    }
  });

  it("require('tierstore') works from a CommonJS consumer", () => {
    const r = node([path.join(fixtures, 'smoke.cjs'), dir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      exports: ['MemoryStore', 'TierStoreError', 'open'],
      content: 'from cjs',
      tier: 'hot',
      embedding: [1, 2, 3],
      metadata: { k: 1 },
      code: 'DIMENSION_MISMATCH',
    });
  });

  it("import 'tierstore' works from an ESM consumer and shares the CommonJS module", () => {
    const r = node([path.join(fixtures, 'smoke.mjs'), dir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      exports: ['MemoryStore', 'TierStoreError', 'default', 'open'],
      sameClass: true,
      content: 'from esm',
      tier: 'hot',
      code: 'INVALID_ARGUMENT',
      names: ['a'],
    });
  });
});

describe('types', () => {
  it('an ESM and a CommonJS consumer type-check against dist/', () => {
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(fixtures, 'tsconfig.json')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the expectTypeOf assertions of binding-types.test.ts hold', () => {
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(fixtures, 'tsconfig.types.json')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
