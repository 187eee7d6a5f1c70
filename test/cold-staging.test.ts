// Single moves to cold (docs/tiers.md, "Single moves to cold"): a record moved
// to cold alone is staged — cold at once for every reader, durable as any
// write in its durability mode — and sealed into a segment in batches. These
// tests kill a child in the middle of a run of single moves (in both
// durabilities) and check that every move that returned holds after the
// reopen, every record byte-exact and once; and that the staged records are
// cold for get, counts, iterate, list, recall and filters before any seal.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import type { MemoryInput, Tier } from '../lib/index.js';
import { ScriptChild } from './helpers/child.js';
import { canonicalOf, indexRecord } from './helpers/index-store.js';
import { useScratch } from './helpers/store.js';

const DIMS = 8;

function storeWithRecords(p: string, n: number): MemoryInput[] {
  const recs = Array.from({ length: n }, (_, i) => ({ ...indexRecord('r', i, DIMS), metadata: { i, even: i % 2 === 0 } }));
  const s = open(p, { dimensions: DIMS, hotCapacity: n / 2, warmCapacity: 10 * n });
  s.putMany(recs);
  s.migrate();
  const c = s.counts();
  expect(c.hot > 0 && c.warm > 0 && c.cold === 0, JSON.stringify(c)).toBe(true);
  s.close();
  return recs;
}

const MOVER = String.raw`
  const s = ts.open(args.p, { durability: args.durability, hotCapacity: args.hotCapacity });
  fs.writeSync(1, 'OPEN\n');
  for (let i = 0; i < args.ids.length; i++) {
    s.move(args.ids[i], 'cold');
    fs.writeSync(1, 'M ' + i + '\n');
  }
  fs.writeSync(1, 'DONE ' + JSON.stringify(s.stats().coldStagedRecords) + '\n');
  setInterval(() => {}, 1 << 30); // wait to be killed, store still open
`;

describe('single moves to cold killed mid-run', () => {
  const scratch = useScratch();
  const runs = [
    { durability: 'relaxed', killAfter: 37 },
    { durability: 'relaxed', killAfter: Infinity },
    { durability: 'sync', killAfter: 23 },
  ] as const;

  it.each(runs)("'$durability', killed after $killAfter moves: every returned move holds, every record exact", async ({ durability, killAfter }) => {
    const p = path.join(scratch.dir(), 'db');
    const n = 120;
    const recs = storeWithRecords(p, n);
    const want = new Map(recs.map((r) => [r.id, canonicalOf(r)]));
    const ids = recs.filter((_, i) => i % 3 !== 0).map((r) => r.id); // from hot and from warm
    const child = new ScriptChild(MOVER, { p, ids, durability, hotCapacity: n / 2 });
    const acked = (lines: string[]) => lines.filter((l) => l.startsWith('M ')).length;
    const reached = await child.waitFor((l) => l.some((x) => x.startsWith('DONE')) || acked(l) >= killAfter, 120_000);
    expect(reached, `child progressed: ${child.stderr}`).toBe(true);
    const done = child.lines.find((l) => l.startsWith('DONE '));
    if (done) expect(Number(done.slice(5)), 'every move staged, none sealed yet').toBe(ids.length);
    const exit = await child.kill('SIGKILL');
    expect(exit.signal, child.stderr).toBe('SIGKILL');
    const returned = acked(child.lines);
    const mustBeCold = new Set(ids.slice(0, returned));
    const inFlight = ids[returned];

    for (const readOnly of [true, false]) {
      const s = readOnly ? open(p, { readOnly: true }) : open(p);
      try {
        const seen = new Map<string, Tier>();
        for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) {
          expect(seen.has(m.id), `${m.id} yielded once`).toBe(false);
          seen.set(m.id, m.tier);
          expect(canonicalOf({ ...m, embedding: m.embedding! }), `${m.id} byte-exact`).toBe(want.get(m.id));
        }
        expect(seen.size).toBe(n);
        const notCold = [...mustBeCold].filter((id) => seen.get(id) !== 'cold');
        expect(notCold, 'moves that returned').toEqual([]);
        const movedWithoutAsking = [...seen].filter(([id, t]) => t === 'cold' && !mustBeCold.has(id) && id !== inFlight);
        expect(movedWithoutAsking, 'cold records nobody moved').toEqual([]);
        expect(s.counts().cold).toBe([...seen.values()].filter((t) => t === 'cold').length);
        if (readOnly) expect(s.stats().coldStagedRecords, 'back in the staging from the log').toBe(s.counts().cold);
      } finally {
        s.close();
      }
    }
    // The clean close sealed them: one segment, nothing staged.
    const s = open(p, { readOnly: true });
    try {
      expect(s.stats().coldStagedRecords).toBe(0);
      expect(s.stats().coldSegments).toBe(mustBeCold.size > 0 ? 1 : 0);
      expect(s.stats().indexRebuilt).toBe(false);
    } finally {
      s.close();
    }
  });
});

describe('staged records are cold for every reader before any seal', () => {
  const scratch = useScratch();

  it('get, counts, iterate, list with its cursor, recall and filters', async () => {
    const p = path.join(scratch.dir(), 'db');
    const n = 40;
    const recs = storeWithRecords(p, n);
    const s = open(p, { hotCapacity: n / 2 });
    try {
      const moved = recs.filter((_, i) => i % 4 === 1);
      for (const r of moved) expect(s.move(r.id, 'cold')).toBe(true);
      expect(s.stats().coldStagedRecords).toBe(moved.length);
      expect(s.stats().coldSegments).toBe(0);
      expect(s.counts().cold).toBe(moved.length);
      for (const r of moved) expect(s.get(r.id)?.tier).toBe('cold');
      expect([...s.iterate({ tier: 'cold' })].map((m) => m.id), 'in move order').toEqual(moved.map((r) => r.id));
      // list by cursor, two at a time
      const listed: string[] = [];
      let cursor: string | undefined;
      do {
        const page = s.list({ tier: 'cold', limit: 2, ...(cursor ? { cursor } : {}) });
        listed.push(...page.memories.map((m) => m.id));
        expect(page.tierCounts.cold).toBe(moved.length);
        cursor = page.pagination.nextCursor;
      } while (cursor);
      expect(listed).toEqual(moved.map((r) => r.id));
      for (const r of moved) {
        const hits = s.recall(r.embedding, { k: 1, tier: 'cold' });
        expect(hits.map((h) => [h.id, h.tier])).toEqual([[r.id, 'cold']]);
        const viaAsync = await s.recallAsync(r.embedding, { k: 1, tier: 'cold' });
        expect(viaAsync.map((h) => h.id)).toEqual([r.id]);
      }
      const even = moved.filter((r) => (r.metadata as { even: boolean }).even).map((r) => r.id).sort();
      expect([...s.iterate({ tier: 'cold', filter: { metadata: { even: true } } })].map((m) => m.id).sort()).toEqual(even);
      const hits = s.recall(moved[0]!.embedding, { k: n, tier: 'cold', filter: { metadata: { even: true } } });
      expect(hits.map((h) => h.id).sort()).toEqual(even);
      // A staged record moved back out, deleted, or given a new version.
      expect(s.move(moved[0]!.id, 'hot')).toBe(true);
      expect(s.get(moved[0]!.id)?.tier).toBe('hot');
      expect(s.stats().coldStagedRecords, 'a move out seals the staging first').toBe(0);
      expect(s.move(moved[1]!.id, 'warm')).toBe(true);
      expect(s.get(moved[1]!.id)?.tier).toBe('warm');
      expect(s.move(recs[0]!.id, 'cold')).toBe(true);
      expect(s.delete(recs[0]!.id)).toBe(true);
      expect(s.get(recs[0]!.id)).toBeUndefined();
      expect(s.counts().total).toBe(n - 1);
    } finally {
      s.close();
    }
    expect(fs.readdirSync(p).filter((f) => f.endsWith('.seg')).length, 'sealed by flushes, moves out and the close').toBeGreaterThan(0);
  });
});
