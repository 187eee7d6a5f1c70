// Crash consistency, randomized (issue 7, part 1; the short version of
// `npm run stress`): scripts/stress/crash.mjs kills a writer running a random
// mixed workload with SIGKILL at random moments, many times on one store, and
// checks after each kill that every acknowledged write is there bit-exact,
// every acknowledged delete is gone, the operation in flight happened whole or
// not at all, no id is in two tiers and nothing is CORRUPTION.
//
// The checker itself is tested first: deliberately wrong store states must be
// reported, and a writer that acknowledges a write it never made must be
// caught end to end. Seeds are fixed (TIERSTORE_STRESS_SEED overrides them);
// the kill moments are random. Budget: about 40 s.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/child.js';
// @ts-expect-error -- plain ESM script without type declarations
import { ALL_IDS, CrashModel, effectsOf, opAt, runCrash } from '../scripts/stress/crash.mjs';
// @ts-expect-error -- plain ESM script without type declarations
import { recordDigest } from '../scripts/stress/common.mjs';

const SEED = Number(process.env.TIERSTORE_STRESS_SEED ?? 20240601);

type Obs = {
  all: Array<[string, string, string]>;
  perTier: Record<string, string[]>;
  counts: Record<string, number>;
  gets: Record<string, { get: string | null; has: boolean }>;
  recall: string[];
};

/** An observation of a store holding `records` (id → [tier, digest]), consistent in every read path. */
function observation(records: Record<string, [string, string]>): Obs {
  const all = Object.entries(records).map(([id, [tier, d]]) => [id, tier, d] as [string, string, string]);
  const perTier: Record<string, string[]> = { hot: [], warm: [], cold: [] };
  for (const [id, tier] of all) perTier[tier]!.push(id);
  const gets: Obs['gets'] = {};
  for (const id of ALL_IDS as string[]) gets[id] = { get: records[id]?.[1] ?? null, has: id in records };
  return {
    all,
    perTier,
    counts: { hot: perTier.hot!.length, warm: perTier.warm!.length, cold: perTier.cold!.length, total: all.length },
    gets,
    recall: all.map((r) => r[0]),
  };
}

const rec = (id: string, content: string) => ({ id, content, embedding: [1, 0.5, -0.25, 0, 0, 0, 0, 1], createdAt: 1, metadata: { a: 1 } });

describe('the crash checker reports wrong store states', () => {
  const [A, B, C] = ALL_IDS as string[];
  const dA = recordDigest(rec(A!, 'a'));
  const dB = recordDigest(rec(B!, 'b'));
  const dC = recordDigest(rec(C!, 'c'));

  /** A model with A and B acknowledged, and (optionally) an operation in flight. */
  function model(inFlight?: { kind: string; records?: unknown[]; id?: string }) {
    const m = new CrashModel();
    m.begin(0, 0, { kind: 'putMany', records: [rec(A!, 'a'), rec(B!, 'b')] });
    m.ack(0, 0);
    if (inFlight) m.begin(0, 1, inFlight);
    return m;
  }

  it('accepts the acknowledged state, and either outcome of the operation in flight', () => {
    expect(model().check(observation({ [A!]: ['hot', dA], [B!]: ['cold', dB] }), 't')).toEqual([]);
    const put = { kind: 'put', records: [rec(C!, 'c')] };
    expect(model(put).check(observation({ [A!]: ['hot', dA], [B!]: ['warm', dB] }), 't')).toEqual([]);
    const m = model(put);
    expect(m.check(observation({ [A!]: ['hot', dA], [B!]: ['warm', dB], [C!]: ['hot', dC] }), 't')).toEqual([]);
    expect(m.pending, 'the in-flight put is resolved as done').toBe(null);
    expect(m.acked.get(C), 'and is now acknowledged').toBe(dC);
  });

  it('reports a missing acknowledged write, an altered field and an id never written', () => {
    expect(model().check(observation({ [A!]: ['hot', dA] }), 't').join('\n')).toMatch(/acknowledged record .* is missing/);
    const altered = recordDigest({ ...rec(B!, 'b'), metadata: { a: 2 } });
    expect(model().check(observation({ [A!]: ['hot', dA], [B!]: ['warm', altered] }), 't').join('\n')).toMatch(/differs .* in: metadata/);
    const bits = recordDigest({ ...rec(B!, 'b'), embedding: [1, 0.5, -0.25, 0, 0, 0, 0, 1.0000001] });
    expect(model().check(observation({ [A!]: ['hot', dA], [B!]: ['warm', bits] }), 't').join('\n')).toMatch(/in: embedding/);
    expect(model().check(observation({ [A!]: ['hot', dA], [B!]: ['warm', dB], [C!]: ['cold', dC] }), 't').join('\n')).toMatch(/never written/);
  });

  it('reports an acknowledged delete that came back', () => {
    const m = model({ kind: 'delete', id: A! });
    m.ack(0, 1);
    expect(m.check(observation({ [A!]: ['cold', dA], [B!]: ['hot', dB] }), 't').join('\n')).toMatch(/never written or was deleted/);
  });

  it('reports a torn batch', () => {
    const batch = { kind: 'putMany', records: [rec(A!, 'a2'), rec(B!, 'b2')] };
    const half = observation({ [A!]: ['hot', recordDigest(rec(A!, 'a2'))], [B!]: ['hot', dB] });
    expect(model(batch).check(half, 't').join('\n')).toMatch(/was torn/);
  });

  it('reports duplicates, an id in two tiers, counts, get() and recall disagreeing with iteration', () => {
    const dup = observation({ [A!]: ['hot', dA], [B!]: ['warm', dB] });
    dup.all.push([A!, 'cold', dA]);
    dup.perTier.cold!.push(A!);
    dup.counts.cold = 1;
    dup.counts.total = 3;
    const text = model().check(dup, 't').join('\n');
    expect(text).toMatch(/more than once/);
    expect(text).toMatch(/in two tiers/);
    const counts = observation({ [A!]: ['hot', dA], [B!]: ['warm', dB] });
    counts.counts.warm = 2;
    expect(model().check(counts, 't').join('\n')).toMatch(/counts\(\)\.warm/);
    const gets = observation({ [A!]: ['hot', dA], [B!]: ['warm', dB] });
    gets.gets[B!] = { get: null, has: false };
    expect(model().check(gets, 't').join('\n')).toMatch(/get\(.*differs from iteration/);
    const recall = observation({ [A!]: ['hot', dA], [B!]: ['warm', dB] });
    recall.recall = [A!, A!];
    expect(model().check(recall, 't').join('\n')).toMatch(/recall\(k = 2\) returns 2 ids \(1 distinct\)/);
  });

  it('parent and writer derive the same operations from the seed', () => {
    // The writer is another process: derive the operations there too (a
    // hidden dependence on Math.random, the clock or the process would show).
    const ops = Array.from({ length: 60 }, (_, i) => opAt(SEED, 3, i));
    const module = pathToFileURL(path.join(REPO_ROOT, 'scripts', 'stress', 'crash.mjs')).href;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e',
      `const m = await import(${JSON.stringify(module)});
       const ops = Array.from({ length: 60 }, (_, i) => m.opAt(${SEED}, 3, i));
       process.stdout.write(JSON.stringify({ ops, effects: ops.map((o) => [...m.effectsOf(o).entries()]) }));`,
    ], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(child.status, child.stderr).toBe(0);
    const theirs = JSON.parse(child.stdout) as { ops: unknown[]; effects: unknown[] };
    expect(theirs.ops).toEqual(JSON.parse(JSON.stringify(ops)));
    expect(theirs.effects).toEqual(JSON.parse(JSON.stringify(ops.map((o) => [...effectsOf(o).entries()]))));
    // and the seed matters: other seeds give other operations
    expect(JSON.stringify(Array.from({ length: 60 }, (_, i) => opAt(SEED + 1, 3, i)))).not.toBe(JSON.stringify(ops));
    const kinds = new Set(Array.from({ length: 400 }, (_, i) => opAt(SEED, 0, i).kind));
    for (const k of ['put', 'putMany', 'delete', 'move', 'migrate', 'compact', 'flush']) expect(kinds.has(k), `the workload has ${k}`).toBe(true);
  });
});

describe('SIGKILL at random moments on one store, many times', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-reliability-crash-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a writer that acknowledges a write it never made is caught', async () => {
    const s = await runCrash({ kills: 2, seed: SEED, plant: 'lose-put', dir: tempDir() });
    expect(s.findings.length, JSON.stringify(s)).toBeGreaterThan(0);
    expect(s.findings.join('\n')).toMatch(/acknowledged record .* (is missing|differs)|never written or was deleted/);
  }, 300_000);

  it("durability 'relaxed': 20 kills, every acknowledged write and delete survives", async () => {
    const s = await runCrash({ kills: 20, durability: 'relaxed', seed: SEED, dir: tempDir() });
    expect(s.findings, `seed ${SEED}`).toEqual([]);
    expect(s.kills).toBe(20);
    expect(s.checks, 'the store was checked after every kill (and at the end)').toBeGreaterThanOrEqual(20);
    expect(s.operations).toBeGreaterThan(0);
    expect(s.records, 'the store holds records at the end').toBeGreaterThan(0);
  }, 600_000);

  it("durability 'sync': 5 kills, the same holds", async () => {
    const s = await runCrash({ kills: 5, durability: 'sync', seed: SEED + 1, dir: tempDir() });
    expect(s.findings, `seed ${SEED + 1}`).toEqual([]);
    expect(s.kills).toBe(5);
    expect(s.checks).toBeGreaterThanOrEqual(5);
  }, 600_000);
});
