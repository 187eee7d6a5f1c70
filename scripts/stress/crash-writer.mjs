// The writer child of crash.mjs: opens the store, reports what it holds
// ("state {json}"), says "ready", then runs the round's operations, printing
// "begin i kind fingerprint" before each and "ack i" after it returned, until
// it is killed (after the round's last op it prints "done" and waits).
// An operation that throws prints "error i {json}" and exits 3; a failed open
// or read prints "fatal {json}" and exits 4. With --check-only it reports the
// state, closes the store (a clean close) and exits 0.
//
//   node crash-writer.mjs --store DIR --seed S --round R --options JSON [--create] [--check-only]
import { ALL_IDS, CRASH_DIMS, fingerprintOf, opAt, TIERS } from './crash.mjs';
import { loadTierstore, parseArgs, recordDigest, writeLineSync } from './common.mjs';

const MAX_OPS_PER_ROUND = 20_000;

// --plant lose-put: acknowledge the round's first put without doing it (a
// deliberately lost write, to prove the parent's checks catch one).
const args = parseArgs(process.argv.slice(2), { store: '', seed: 0, round: 0, options: '{}', create: false, checkOnly: false, plant: '' });
let plantPending = args.plant === 'lose-put';
const { open } = loadTierstore();

function errorJson(e) {
  return JSON.stringify({ name: e?.name, code: e?.code, message: String(e?.message ?? e) });
}

/** Everything the parent checks, as data digests (access statistics excluded), and the ids recall finds. */
function observe(store) {
  const all = [];
  for (const m of store.iterate({ tier: 'all', includeEmbeddings: true })) all.push([m.id, m.tier, recordDigest(m)]);
  const perTier = {};
  for (const t of TIERS) perTier[t] = [...store.iterate({ tier: t })].map((m) => m.id);
  const c = store.counts();
  const gets = {};
  for (const id of ALL_IDS) {
    const m = store.get(id, { includeEmbedding: true });
    gets[id] = { get: m === undefined ? null : recordDigest(m), has: store.has(id) };
  }
  // recall scans every tier by itself (cold columns, deletion bitmaps): with k = total it must return every record once.
  const recall = c.total > 0 ? store.recall(Array.from({ length: CRASH_DIMS }, (_, d) => Math.cos(d)), { k: Math.min(c.total, 10_000) }).map((h) => h.id) : [];
  return { all, perTier, counts: { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total }, gets, recall };
}

let store;
try {
  const options = JSON.parse(args.options);
  store = open(args.store, args.create ? { ...options, dimensions: CRASH_DIMS } : options);
  writeLineSync(`state ${JSON.stringify(observe(store))}`);
} catch (e) {
  writeLineSync(`fatal ${errorJson(e)}`);
  process.exit(4);
}
writeLineSync('ready');

if (args.checkOnly) {
  store.close();
  process.exit(0);
}

for (let i = 0; i < MAX_OPS_PER_ROUND; i++) {
  const op = opAt(args.seed, args.round, i);
  writeLineSync(`begin ${i} ${op.kind} ${fingerprintOf(op)}`);
  try {
    switch (op.kind) {
      case 'put':
        if (plantPending) plantPending = false;
        else store.put(op.records[0]);
        break;
      case 'putMany':
        store.putMany(op.records);
        break;
      case 'delete':
        store.delete(op.id);
        break;
      case 'move':
        store.move(op.id, op.tier);
        break;
      case 'migrate':
        store.migrate();
        break;
      case 'compact':
        store.compact();
        break;
      case 'flush':
        store.flush();
        break;
      case 'get':
        store.get(op.id);
        break;
      case 'recall':
        store.recall(op.query, { k: op.k });
        break;
      default:
        throw new Error(`unknown op ${op.kind}`);
    }
  } catch (e) {
    writeLineSync(`error ${i} ${errorJson(e)}`);
    process.exit(3);
  }
  writeLineSync(`ack ${i}`);
}
writeLineSync('done');
setInterval(() => {}, 1 << 30); // hold the store open until killed
