// Crash consistency under SIGKILL at random moments (docs/durability.md).
//
//   node scripts/stress/crash.mjs --kills 200 --durability relaxed --seed 1
//
// Each round starts a writer child (crash-writer.mjs) on the SAME store. The
// writer opens the store (recovering from the previous kill), reports what it
// reads (every record's data digest from iterate('all') and from each tier,
// get/has of every id, counts()), then runs a random mixed workload — put,
// putMany (with repeated ids in a batch, some of 200..1200 records), delete,
// move, migrate, compact, flush, get — under small hot/warm capacities so
// migrations never stop. Before each operation it prints "begin i kind fp",
// after it returns "ack i". The parent regenerates every operation from
// (seed, round, i) and keeps the model: per id the acknowledged value (a data
// digest or absent), plus the one operation in flight, whose effects may or
// may not have happened (a putMany all or none). The parent SIGKILLs the
// writer at a random moment: before it finished opening, right after, after a
// random delay, or a few ms into a compaction, migration or a big putMany.
//
// What is checked after every kill (by the next round's writer reading, and
// finally by a read-only open, a clean close and a reopen after it):
//   - every acknowledged write is there with exact data fields (id, content,
//     metadata, confidence, activation, createdAt, embedding bit-exact; the
//     best-effort access statistics are not compared),
//   - every acknowledged delete is gone and no id outside the model exists,
//   - the in-flight operation happened entirely or not at all,
//   - no id appears twice (in 'all' or across tiers), counts() agrees with
//     iteration per tier, iterate({tier}) agrees with the tiers 'all' reports,
//     get/has agree with iteration, recall with k = all returns each record once,
//   - no operation and no open fails (no CORRUPTION, no other error), and the
//     writer never dies by itself.
// With --durability sync the same is checked (SIGKILL cannot simulate power
// loss; what sync adds is only visible after an OS crash).
//
// The last line printed is `SUMMARY {"name":"crash",...}`; the exit status is
// 1 when there is any finding, each naming the seed and round to reproduce.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  digestDifference,
  isMain,
  LineChild,
  mixSeed,
  mulberry32,
  parseArgs,
  pick,
  pickWeighted,
  printSummary,
  randInt,
  randomEmbedding,
  randomMetadata,
  recordDigest,
  sleep,
  STRESS_DIR,
  textOfBytes,
} from './common.mjs';

export const CRASH_DIMS = 8;
export const ID_SPACE = 300;
export const TIERS = ['hot', 'warm', 'cold'];
const WRITER = path.join(STRESS_DIR, 'crash-writer.mjs');

/** The id with number n: mostly ASCII, every tenth multi-byte. */
export function idOf(n) {
  return n % 10 === 7 ? `многоязычный-${n}-🧠` : `id-${n}`;
}

export const ALL_IDS = Array.from({ length: ID_SPACE }, (_, n) => idOf(n));

function makeRecord(rng, round, i, j) {
  const id = idOf(randInt(rng, 0, ID_SPACE - 1));
  const sizeKind = rng();
  const bytes = sizeKind < 0.03 ? 0 : sizeKind < 0.08 ? randInt(rng, 10_000, 120_000) : randInt(rng, 0, 400);
  const rec = {
    id,
    content: bytes === 0 ? '' : `${id} r${round} op${i}.${j} ` + textOfBytes(rng, bytes),
    embedding: randomEmbedding(rng, CRASH_DIMS),
    createdAt: 1_600_000_000_000 + randInt(rng, 0, 1e9),
  };
  if (rng() < 0.8) rec.confidence = rng();
  if (rng() < 0.7) rec.activation = rng();
  if (rng() < 0.85) rec.metadata = { round, op: i, ...randomMetadata(rng) };
  return rec;
}

/**
 * Operation i of round r, the same in the writer and the parent.
 * { kind, records?, id?, tier? }
 */
export function opAt(seed, round, i) {
  const rng = mulberry32(mixSeed(seed, round, i, 0xc4a5));
  const kind = pickWeighted(rng, { put: 32, putMany: 16, delete: 14, move: 14, migrate: 6, compact: 2, flush: 2, get: 8, recall: 3 });
  switch (kind) {
    case 'put':
      return { kind, records: [makeRecord(rng, round, i, 0)] };
    case 'putMany': {
      const n = rng() < 0.1 ? randInt(rng, 200, 1200) : randInt(rng, 1, 40);
      const records = Array.from({ length: n }, (_, j) => makeRecord(rng, round, i, j));
      if (n > 1 && rng() < 0.5) records[n - 1] = { ...records[n - 1], id: records[0].id }; // a repeated id: the last wins
      return { kind, records };
    }
    case 'delete':
    case 'get':
      return { kind, id: idOf(randInt(rng, 0, ID_SPACE - 1)) };
    case 'move':
      return { kind, id: idOf(randInt(rng, 0, ID_SPACE - 1)), tier: pick(rng, TIERS) };
    case 'recall':
      return { kind, query: Array.from({ length: CRASH_DIMS }, () => rng() * 2 - 1 || 1), k: randInt(rng, 1, 50) };
    default:
      return { kind };
  }
}

/** The data effects of an operation: id → digest (written) or null (deleted). Last wins in a batch. */
export function effectsOf(op) {
  const effects = new Map();
  if (op.kind === 'put' || op.kind === 'putMany') for (const r of op.records) effects.set(r.id, recordDigest(r));
  else if (op.kind === 'delete') effects.set(op.id, null);
  return effects;
}

/** A short fingerprint the writer prints with "begin", to check both sides generated the same op. */
export function fingerprintOf(op) {
  if (op.records) return `${op.records.length}:${recordDigest(op.records[op.records.length - 1]).slice(0, 8)}`;
  return op.id ?? '-';
}

/** The open options of a round: capacities small enough that migration runs all the time. */
export function roundOptions(seed, round, durability) {
  const rng = mulberry32(mixSeed(seed, round, 0x0a7));
  return {
    hotCapacity: pick(rng, [0, 1, 4, 16, 16, 32, 64]),
    warmCapacity: pick(rng, [0, 8, 48, 48, 100]),
    skipWarm: rng() < 0.15,
    durability,
  };
}

// ---------------------------------------------------------------------------
// The model of what the store must hold

export class CrashModel {
  constructor() {
    /** id → digest of the acknowledged version (absent: not in the store). */
    this.acked = new Map();
    /** The operation in flight: { i, round, kind, effects } or null. */
    this.pending = null;
  }

  begin(round, i, op) {
    this.pending = { round, i, kind: op.kind, effects: effectsOf(op) };
  }

  ack(round, i) {
    const p = this.pending;
    if (!p || p.round !== round || p.i !== i) throw new Error(`ack ${round}/${i} without its begin`);
    this.commitPending();
  }

  commitPending() {
    for (const [id, d] of this.pending.effects) {
      if (d === null) this.acked.delete(id);
      else this.acked.set(id, d);
    }
    this.pending = null;
  }

  /** The values id may have now: the acknowledged one, and the in-flight op's. */
  acceptable(id) {
    const out = [this.acked.get(id) ?? null];
    if (this.pending && this.pending.effects.has(id)) out.push(this.pending.effects.get(id));
    return out;
  }

  /**
   * Checks an observation of the store (see crash-writer.mjs `observe`)
   * against the model; returns findings (strings). When it holds, the
   * in-flight operation is resolved to what the store shows.
   */
  check(obs, where) {
    const findings = [];
    const f = (msg) => findings.push(`${where}: ${msg}`);
    const seen = new Map();
    const dups = new Set();
    for (const [id, tier, digest] of obs.all) {
      if (seen.has(id)) dups.add(id);
      seen.set(id, { tier, digest });
    }
    if (dups.size > 0) f(`ids yielded more than once by iterate('all'): ${JSON.stringify([...dups].slice(0, 10))}`);
    // Tiers: counts() and iterate({tier}) agree with the tiers 'all' reports, and no id is in two tiers.
    const tierOf = new Map();
    for (const t of TIERS) {
      const labelled = obs.all.filter((r) => r[1] === t).map((r) => r[0]);
      const own = obs.perTier[t] ?? [];
      if (obs.counts[t] !== labelled.length) f(`counts().${t} = ${obs.counts[t]} but iterate('all') yields ${labelled.length} ${t} records`);
      if (own.length !== labelled.length || [...own].sort().join('\n') !== [...labelled].sort().join('\n')) {
        f(`iterate({tier:'${t}'}) yields ${own.length} ids, iterate('all') labels ${labelled.length} as ${t}, and they differ`);
      }
      for (const id of own) {
        if (tierOf.has(id)) f(`id ${JSON.stringify(id)} is in two tiers: ${tierOf.get(id)} and ${t}`);
        tierOf.set(id, t);
      }
    }
    if (obs.counts.total !== obs.all.length) f(`counts().total = ${obs.counts.total} but iterate('all') yields ${obs.all.length}`);
    if (obs.recall !== undefined) {
      const want = obs.all.map((r) => r[0]).sort().slice(0, 10_000);
      const got = [...obs.recall].sort();
      if (got.join('\n') !== want.join('\n')) f(`recall(k = ${obs.all.length}) returns ${got.length} ids (${new Set(got).size} distinct) that are not the ${want.length} iterated`);
    }
    // Every id: the value is one the model allows; get/has agree with iteration.
    const ids = new Set([...this.acked.keys(), ...seen.keys(), ...Object.keys(obs.gets)]);
    if (this.pending) for (const id of this.pending.effects.keys()) ids.add(id);
    const applied = [];
    const notApplied = [];
    for (const id of ids) {
      const value = seen.get(id)?.digest ?? null;
      const ok = this.acceptable(id);
      if (!ok.includes(value)) {
        const acked = this.acked.get(id) ?? null;
        if (acked === null && value !== null && !(this.pending && this.pending.effects.has(id))) {
          f(`id ${JSON.stringify(id)} exists but was never written or was deleted (acknowledged)`);
        } else if (value === null) {
          f(`acknowledged record ${JSON.stringify(id)} is missing`);
        } else if (acked === null) {
          f(`record ${JSON.stringify(id)} exists, but its acknowledged state is deleted, and the in-flight op did not write this value (fields differing from the in-flight value: ${digestDifference(value, this.pending?.effects.get(id) ?? null).join(', ')})`);
        } else {
          f(`record ${JSON.stringify(id)} differs from its acknowledged version in: ${digestDifference(value, acked).join(', ')}`);
        }
      }
      if (id in obs.gets) {
        const g = obs.gets[id];
        if (g.get !== value) f(`get(${JSON.stringify(id)}) gives ${g.get === null ? 'nothing' : 'a record'} that differs from iteration (${digestDifference(g.get, value).join(', ')})`);
        if (g.has !== (value !== null)) f(`has(${JSON.stringify(id)}) = ${g.has} but iteration ${value === null ? 'lacks' : 'has'} it`);
      } else if (ALL_IDS.includes(id)) {
        f(`the observation has no get() of ${JSON.stringify(id)}`);
      }
      if (this.pending && this.pending.effects.has(id)) {
        const before = this.acked.get(id) ?? null;
        const after = this.pending.effects.get(id);
        if (before !== after) {
          if (value === after) applied.push(id);
          else if (value === before) notApplied.push(id);
        }
      }
    }
    if (this.pending && applied.length > 0 && notApplied.length > 0) {
      f(`the in-flight ${this.pending.kind} (round ${this.pending.round} op ${this.pending.i}) was torn: ${applied.length} ids applied, ${notApplied.length} not (e.g. applied ${JSON.stringify(applied.slice(0, 3))}, not ${JSON.stringify(notApplied.slice(0, 3))})`);
    }
    if (findings.length === 0 && this.pending) {
      if (applied.length > 0) this.commitPending();
      else this.pending = null;
    }
    return findings;
  }
}

// ---------------------------------------------------------------------------
// The run

const KILL_MODES = { beforeOpen: 8, rightAfterOpen: 10, randomDelay: 52, midCompaction: 12, midMigration: 8, midBigBatch: 10 };

/**
 * Runs `kills` writer rounds on one store, each ended by SIGKILL, then the
 * final checks. Returns { name, operations, kills, rounds, findings, seconds, dir }.
 */
export async function runCrash({
  kills = 20,
  durability = 'relaxed',
  seed = 1,
  dir,
  log = () => {},
  maxFindings = 20,
  roundTimeoutMs = 120_000,
  plant = '',
} = {}) {
  const started = Date.now();
  const ownDir = dir === undefined;
  const base = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-crash-'));
  const storePath = path.join(base, 'store');
  const model = new CrashModel();
  const findings = [];
  let operations = 0;
  let killsDone = 0;
  let checks = 0;
  const modes = {};
  const repro = `node scripts/stress/crash.mjs --seed ${seed} --durability ${durability} --kills ${kills}`;

  const runWriter = async (round, { mode, checkOnly = false, readOnly = false }) => {
    const options = roundOptions(seed, round, durability);
    const where = `seed ${seed} round ${round}${checkOnly ? ' (final check)' : ''}`;
    let state = 'starting';
    let lastBegin = null;
    let bigBatchBegun = false;
    let compactBegun = false;
    let migrateBegun = false;
    let acks = 0;
    const problems = [];
    const child = new LineChild(
      WRITER,
      ['--store', storePath, '--seed', String(seed), '--round', String(round), '--options', JSON.stringify({ ...options, readOnly }), ...(checkOnly ? ['--check-only'] : []), ...(round === 0 ? ['--create'] : []), ...(plant && !checkOnly ? ['--plant', plant] : [])],
      {
        onLine: (line, complete) => {
          if (!complete) return; // a line cut by the kill: the writer had not finished saying it
          const sp = line.indexOf(' ');
          const tag = sp === -1 ? line : line.slice(0, sp);
          const rest = sp === -1 ? '' : line.slice(sp + 1);
          if (tag === 'state') {
            checks++;
            problems.push(...model.check(JSON.parse(rest), where));
            state = 'checked';
          } else if (tag === 'ready') {
            state = 'ready';
          } else if (tag === 'begin') {
            const [is, kind, fp] = rest.split(' ');
            const i = Number(is);
            const op = opAt(seed, round, i);
            if (op.kind !== kind || fingerprintOf(op) !== fp) {
              problems.push(`${where}: harness: the writer's op ${i} (${kind} ${fp}) is not the parent's (${op.kind} ${fingerprintOf(op)})`);
            }
            model.begin(round, i, op);
            lastBegin = i;
            operations++;
            if (kind === 'compact') compactBegun = true;
            if (kind === 'migrate' || kind === 'move') migrateBegun = true;
            if (kind === 'putMany' && op.records.length >= 200) bigBatchBegun = true;
          } else if (tag === 'ack') {
            acks++;
            try {
              model.ack(round, Number(rest));
            } catch (e) {
              problems.push(`${where}: harness: ${e.message}`);
            }
          } else if (tag === 'error' || tag === 'fatal') {
            problems.push(`${where}: the writer got an error (${tag}): ${rest}`);
          }
        },
      },
    );
    const ready = () => state === 'ready';
    let killedByUs = false;
    if (checkOnly) {
      let timer;
      const exit = await Promise.race([child.exited, new Promise((resolve) => (timer = setTimeout(() => resolve(null), roundTimeoutMs)))]);
      clearTimeout(timer);
      if (exit === null) {
        problems.push(`${where}: the checking writer hung for ${roundTimeoutMs} ms (state ${state})`);
        await child.kill();
      } else if (exit.code !== 0 || exit.signal !== null) {
        problems.push(`${where}: the checking writer exited with code ${exit.code} signal ${exit.signal}: ${child.stderr.slice(-2000)}`);
      }
      if (state !== 'ready' && problems.length === 0) problems.push(`${where}: the checking writer reported no state`);
      return problems;
    }
    const rng = mulberry32(mixSeed(seed, round, 0x4b11));
    if (plant) {
      // A planted fault must be reached before the kill: let the round run a while.
      await child.waitFor(() => acks >= 30 || !child.running, roundTimeoutMs);
    } else if (mode === 'beforeOpen') {
      await sleep(randInt(rng, 0, 250)); // node start + load + open takes about that long
    } else {
      const gotReady = await child.waitFor(ready, roundTimeoutMs);
      if (!gotReady) {
        if (child.running) problems.push(`${where}: the writer did not open and check the store within ${roundTimeoutMs} ms`);
      } else if (mode === 'rightAfterOpen') {
        await sleep(randInt(rng, 0, 3));
      } else if (mode === 'randomDelay') {
        await sleep(rng() < 0.3 ? randInt(rng, 0, 50) : randInt(rng, 50, 1500));
      } else {
        const flag = mode === 'midCompaction' ? () => compactBegun : mode === 'midMigration' ? () => migrateBegun : () => bigBatchBegun;
        // Flags are set before the line's waiters are woken, so this fires right after the begin line arrives.
        await child.waitFor(flag, 4000);
        await sleep(randInt(rng, 0, mode === 'midBigBatch' ? 40 : 15));
      }
    }
    if (child.running) {
      killedByUs = true;
      child.child.kill('SIGKILL');
    }
    const exit = await child.exited;
    if (killedByUs && exit.signal === 'SIGKILL') {
      killsDone++;
      modes[mode] = (modes[mode] ?? 0) + 1;
    } else {
      problems.push(`${where}: the writer ended by itself (code ${exit.code}, signal ${exit.signal}, last op begun ${lastBegin}): ${child.stderr.slice(-2000)}`);
    }
    log(`round ${round} ${mode}: ${lastBegin === null ? 0 : lastBegin + 1} ops, in flight: ${model.pending ? `${model.pending.kind} ${model.pending.i}` : 'none'}`);
    return problems;
  };

  const record = (problems, round) => {
    for (const p of problems) {
      if (findings.length < maxFindings) findings.push(`${p} [reproduce: ${repro}; the store is kept in ${base}]`);
    }
    if (problems.length > 0) log(`FINDING in round ${round}:\n  ${problems.join('\n  ')}`);
  };

  let round = 0;
  for (; killsDone < kills && findings.length === 0; round++) {
    const mode = round === 0 ? 'randomDelay' : pickWeighted(mulberry32(mixSeed(seed, round, 0x30de)), KILL_MODES);
    record(await runWriter(round, { mode }), round);
    if (round > kills * 3 + 10) {
      record([`seed ${seed}: only ${killsDone} kills in ${round} rounds`], round);
      break;
    }
  }
  if (findings.length === 0) {
    // A read-only open sees the recovered state too; then a clean close and a reopen of the clean store.
    record(await runWriter(round++, { checkOnly: true, readOnly: true }), round - 1);
    if (findings.length === 0) record(await runWriter(round++, { checkOnly: true }), round - 1);
    if (findings.length === 0) record(await runWriter(round++, { checkOnly: true }), round - 1);
  }
  const summary = {
    name: 'crash',
    durability,
    seed,
    operations,
    kills: killsDone,
    checks,
    rounds: round,
    records: model.acked.size,
    killModes: modes,
    findings,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  if (ownDir && findings.length === 0) fs.rmSync(base, { recursive: true, force: true });
  return summary;
}

if (isMain(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2), { kills: 200, durability: 'relaxed', seed: 1, quiet: false, dir: '' });
  if (args.durability !== 'relaxed' && args.durability !== 'sync') throw new Error('--durability is relaxed or sync');
  const summary = await runCrash({
    kills: args.kills,
    durability: args.durability,
    seed: args.seed,
    dir: args.dir === '' ? undefined : args.dir,
    log: args.quiet ? () => {} : (m) => process.stderr.write(m + '\n'),
  });
  for (const f of summary.findings) process.stdout.write(`FINDING ${f}\n`);
  printSummary(summary);
  process.exitCode = summary.findings.length > 0 ? 1 : 0;
}
