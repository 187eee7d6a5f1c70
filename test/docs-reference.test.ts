// The API reference (`npm run docs`, TypeDoc over the three entry points
// tierstore, tierstore/server and tierstore/export) documents every public
// name: typedoc.json turns an undocumented export, a reference to a type the
// reference leaves out, or a dead {@link} into an error. This runs the same
// check without writing the site, so a public name added without TSDoc fails
// the tests, not only the docs build.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from './helpers/child.js';

const require = createRequire(import.meta.url);

function typedocBin(): string {
  const pkgPath = require.resolve('typedoc/package.json');
  const bin = (require(pkgPath) as { bin: Record<string, string> }).bin.typedoc!;
  return path.join(path.dirname(pkgPath), bin);
}

describe('API reference', () => {
  it('TypeDoc reports no warning: every exported name has TSDoc', () => {
    const run = spawnSync(process.execPath, [typedocBin(), '--emit', 'none'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      timeout: 120_000,
    });
    const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    // The report lists each undocumented name: a failure shows them all.
    const problems = output
      .split('\n')
      .filter((line) => /\[(warning|error)\]/.test(line) && !/Found \d+ errors? and \d+ warnings?/.test(line));
    expect(problems).toEqual([]);
    expect(run.error).toBeUndefined();
    expect(run.status).toBe(0);
  }, 180_000);
});
