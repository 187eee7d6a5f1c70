// Threads (issue 7, part 4), the short version of `npm run stress`'s threads
// step: scripts/stress/threads.mjs run for 1,500 operations (a count, not a
// time window: the same work on a busy machine) in a child process (so a
// native crash shows as the child's signal, not as a dead test runner). Four
// worker threads share one native store under a random mix of every
// operation while the main thread terminates workers in the middle of big
// putMany calls, closes its own handle while the workers go on, and checks
// STORE_LOCKED from another process; at the end no acknowledged write is
// lost, no acknowledged delete undone, shared ids hold a last write, counts
// equal the iterated totals, each id once, and another process can open the
// store (terminated threads released their references). The script's checker
// is itself checked: with --inject-faults it must report each planted fault.
//
// Added here, beyond test/store-threads.test.ts and the lock tests of
// test/store-errors.test.ts: a process whose WORKER THREADS hold the store
// (the main thread never opened it) is SIGKILLed mid-write; the next open
// takes the lock over and every acknowledged write is there.
//
// Workers are terminated inside every kind of call (put, putMany, get,
// iterate, recall, recallAsync, migrate, compact): the addon is built with
// NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS, so an error that can no longer be
// thrown into a terminating thread is dropped instead of aborting the process.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import { REPO_ROOT, ScriptChild, spawnAsync } from './helpers/child.js';
import { iterateAll, useScratch } from './helpers/store.js';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'stress', 'threads.mjs');

interface ThreadsSummary {
  name: string;
  operations: number;
  findings: string[];
  seconds: number;
  workers: number;
  workerThreadsStarted: number;
  terminations: number;
  terminatedInCall: number;
  handleClosesAndReopens: number;
  fullIterations: number;
  recalls: number;
  mainClosedWhileWorkersRan: boolean;
  lockedWhileOnlyWorkersHeld: number;
  finalRecords: number;
}

async function runThreads(args: string[]): Promise<{ status: number | null; signal: string | null; summary: ThreadsSummary; lastLine: string; output: string }> {
  const r = await spawnAsync(process.execPath, [SCRIPT, ...args], { timeout: 240_000 });
  const lines = (r.stdout ?? '').trimEnd().split('\n');
  const lastLine = lines[lines.length - 1] ?? '';
  const output = `status=${r.status} signal=${r.signal}\nstdout:\n${(r.stdout ?? '').slice(-3000)}\nstderr:\n${(r.stderr ?? '').slice(-3000)}`;
  expect(lastLine.startsWith('SUMMARY '), `the last line is the SUMMARY\n${output}`).toBe(true);
  return { status: r.status, signal: r.signal, summary: JSON.parse(lastLine.slice('SUMMARY '.length)) as ThreadsSummary, lastLine, output };
}

describe('worker threads sharing one store (scripts/stress/threads.mjs, short run)', () => {
  it('1,500 operations of every kind from 4 threads, with terminations mid-putMany: no crash, nothing lost, counts consistent', async () => {
    const r = await runThreads(['--operations', '1500', '--terminations', '3', '--seed', '7', '--quiet']);
    expect(r.signal, r.output).toBeNull();
    expect(r.summary.findings, r.output).toEqual([]);
    expect(r.status, r.output).toBe(0);
    const s = r.summary;
    expect(s.name).toBe('threads');
    expect(s.workers).toBe(4);
    expect(s.operations, 'the threads did the work asked for').toBeGreaterThanOrEqual(1500);
    expect(s.terminations).toBe(3);
    expect(s.terminatedInCall, 'terminations landed inside a putMany').toBeGreaterThanOrEqual(1);
    expect(s.workerThreadsStarted, 'a replacement thread per terminated one').toBe(7);
    expect(s.handleClosesAndReopens, 'each thread closed and reopened its own handle at least once').toBeGreaterThanOrEqual(4);
    expect(s.fullIterations).toBeGreaterThan(0);
    expect(s.recalls).toBeGreaterThan(0);
    expect(s.mainClosedWhileWorkersRan, 'the workers went on after the main thread closed its handle').toBe(true);
    expect(s.lockedWhileOnlyWorkersHeld, 'another process got STORE_LOCKED while only worker threads held the store').toBe(1);
    expect(s.finalRecords, 'the reopened store holds at least the stable records').toBeGreaterThanOrEqual(400);
  }, 240_000);

  it('its checker reports planted faults: a lost write, an undone delete, superseded and out-of-order shared writes, an intruder, altered content', async () => {
    const r = await runThreads(['--operations', '800', '--terminations', '0', '--inject-faults', '--seed', '3', '--quiet']);
    expect(r.signal, r.output).toBeNull();
    expect(r.status, 'findings make the exit status 1').toBe(1);
    const f = r.summary.findings.join('\n');
    expect(f).toMatch(/acknowledged write lost/);
    expect(f).toMatch(/acknowledged delete undone/);
    expect(f).toMatch(/but its last acknowledged write is #/);
    expect(f).toMatch(/started later \(ticket \d+\) and was acknowledged/);
    expect(f).toMatch(/unexpected id intruder-1/);
    expect(f).toMatch(/stable-0: content, confidence or createdAt differ/);
  }, 120_000);
});

describe('a process whose worker threads hold the store', () => {
  const scratch = useScratch();

  it('SIGKILLed mid-write: the next open takes the lock over and every acknowledged write is there', async () => {
    const p = scratch.storePath();
    open(p, { dimensions: 4 }).close();
    // The child's main thread never opens the store: three workers do, and
    // write versions 1, 2, 3, ... of their ids (puts and 2-record putManys,
    // with migrations); the main thread prints each acknowledgement.
    const child = new ScriptChild(String.raw`
      const { Worker } = require('node:worker_threads');
      const code = ${'`'}
        const { parentPort, workerData } = require('node:worker_threads');
        const ts = require(process.env.TIERSTORE_REPO);
        const s = ts.open(workerData.p, { hotCapacity: 30, warmCapacity: 60, skipWarm: workerData.w === 2 });
        for (let v = 1; ; v++) {
          for (let i = 0; i < 20; i++) {
            const id = 'k' + workerData.w + '-' + i;
            const rec = (x) => ({ id: x, content: x + ':' + v, embedding: [v, i + 1, 1, 1], metadata: { v } });
            if ((v + i) % 3 === 0) s.putMany([rec(id), rec(id + 'b')]);
            else s.put(rec(id));
            parentPort.postMessage([id, v, (v + i) % 3 === 0]);
          }
          if (v % 5 === 0) s.migrate();
        }
      ${'`'};
      for (let w = 0; w < 3; w++) {
        const worker = new Worker(code, { eval: true, workerData: { p: args.p, w } });
        worker.on('message', ([id, v, pair]) => process.stdout.write('ACK ' + id + ' ' + v + ' ' + (pair ? 1 : 0) + '\n'));
        worker.on('error', (e) => { console.error(e); process.exit(71); });
      }
      setInterval(() => {}, 1 << 30);
    `, { p });
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      const enough = await child.waitFor((lines) => lines.filter((l) => l.startsWith('ACK ')).length >= 600, 120_000);
      expect(enough, `the child acknowledged writes\n${child.stderr}`).toBe(true);
      let locked = '';
      try {
        open(p).close();
      } catch (e) {
        locked = (e as { code?: string }).code ?? String(e);
      }
      expect(locked, 'while its worker threads hold the store, this process is locked out').toBe('STORE_LOCKED');
    } finally {
      exit = await child.kill('SIGKILL');
    }
    expect(exit.signal).toBe('SIGKILL');
    const acked = new Map<string, number>();
    for (const line of child.lines) {
      const m = /^ACK (\S+) (\d+) ([01])$/.exec(line);
      if (!m) continue;
      acked.set(m[1]!, Math.max(acked.get(m[1]!) ?? 0, Number(m[2])));
      if (m[3] === '1') acked.set(`${m[1]!}b`, Math.max(acked.get(`${m[1]!}b`) ?? 0, Number(m[2])));
    }
    expect(acked.size).toBeGreaterThan(30);
    const s = scratch.open(p); // the dead process's lock is taken over
    const all = iterateAll(s, 'all');
    expect(new Set(all.map((m) => m.id)).size, 'each id once').toBe(all.length);
    expect(all.length).toBe(s.counts().total);
    const lost: string[] = [];
    for (const [id, v] of acked) {
      const m = s.get(id);
      const stored = (m?.metadata as { v?: number } | undefined)?.v ?? 0;
      // a later, unacknowledged version may have landed too; never an older one
      if (stored < v || m?.content !== `${id}:${stored}`) lost.push(`${id}: acked v${v}, stored ${m ? `v${stored} ${JSON.stringify(m.content)}` : 'nothing'}`);
    }
    expect(lost, 'every acknowledged write survived').toEqual([]);
  }, 180_000);
});
