// `tierstore bench`: in a repository checkout (bench/run.mjs next to dist/)
// it runs the full benchmark suite, tierstore against its peers, passing the
// remaining arguments through. In an installed package (no bench/, no peers)
// it runs a small tierstore-only benchmark on generated data and says so.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { open } from '../store.js';
import { print, removeOnInterrupt, yieldToEventLoop } from './common.js';
import { generateMemories, seededRandom } from './data.js';
import { formatCount, formatRate, Progress } from './progress.js';
import { formatBytes, table } from './format.js';

/** The package root: dist/cli/ (built) and lib/cli/ (sources) sit two levels below it. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const SUITE_SCRIPT = path.join(PACKAGE_ROOT, 'bench', 'run.mjs');

export function suiteAvailable(): boolean {
  return fs.existsSync(SUITE_SCRIPT);
}

/** Runs `node bench/run.mjs ...args`; resolves with its exit code (0, 1 or 2). */
export function runSuite(args: readonly string[]): Promise<number> {
  process.stderr.write(`tierstore bench: running the benchmark suite, ${path.relative(process.cwd(), SUITE_SCRIPT) || SUITE_SCRIPT} ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SUITE_SCRIPT, ...args], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', reject);
    child.on('exit', (code) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code === 0 ? 0 : code === 2 ? 2 : 1);
    });
  });
}

export interface BuiltinOptions {
  n: number;
  dimensions: number;
  seed: number;
}

interface Row {
  op: string;
  ops: number;
  seconds: number;
}

/** The small tierstore-only benchmark: put, putMany, get, iterate, list, recall on generated data. */
export async function runBuiltin(options: BuiltinOptions): Promise<void> {
  const { n, dimensions } = options;
  await print(`tierstore bench (built-in, tierstore only: the full suite with peers lives in the repository's bench/)\n` +
    `${n} memories, ${dimensions} dimensions, seed ${options.seed}, Node ${process.version}, ${os.cpus().length} cores`);
  const { memories } = generateMemories(n, dimensions, options.seed);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-bench-'));
  const stopWatching = removeOnInterrupt(folder);
  const rows: Row[] = [];
  const time = async (op: string, ops: number, body: () => void): Promise<void> => {
    const t0 = process.hrtime.bigint();
    body();
    rows.push({ op, ops, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    await yieldToEventLoop();
  };
  const random = seededRandom(options.seed + 1);
  const ids = memories.map((m) => m.id);
  try {
    // Capacities put about a quarter of the records in hot, a quarter in warm and half in cold
    // (migration runs inside the writes that exceed them).
    const storeOptions = { dimensions, hotCapacity: Math.ceil(n / 4), warmCapacity: Math.ceil(n / 4) };
    const bulk = open(path.join(folder, 'bulk'), storeOptions);
    const progress = new Progress('putMany');
    await time('putMany (batches of 1000)', n, () => {
      for (let i = 0; i < n; i += 1000) {
        bulk.putMany(memories.slice(i, i + 1000));
        progress.update(Math.min(n, i + 1000), n);
      }
    });
    progress.finish();

    const single = open(path.join(folder, 'single'), storeOptions);
    const puts = Math.min(n, 5000);
    await time('put (one at a time)', puts, () => {
      for (let i = 0; i < puts; i++) single.put(memories[i]!);
    });
    single.close();

    const gets = Math.min(20_000, 4 * n);
    await time('get (random ids, all tiers)', gets, () => {
      for (let i = 0; i < gets; i++) bulk.get(ids[Math.floor(random() * n)]!);
    });
    await time('iterate all (with embeddings)', n, () => {
      let count = 0;
      for (const batch of bulk.iterate({ includeEmbeddings: true }).batches()) count += batch.ids.length;
      if (count !== n) throw new Error(`iterate returned ${count} records, expected ${n}`);
    });
    await time('list (cursor pages of 1000, all)', n, () => {
      let cursor: string | undefined;
      do {
        const page = bulk.list(cursor === undefined ? { tier: 'all', limit: 1000 } : { tier: 'all', limit: 1000, cursor });
        cursor = page.pagination.nextCursor;
      } while (cursor !== undefined);
    });
    const queries = 20;
    await time('recall k=10 (exact, all tiers)', queries, () => {
      for (let q = 0; q < queries; q++) bulk.recall(memories[Math.floor(random() * n)]!.embedding, { k: 10 });
    });
    const stats = bulk.stats();
    bulk.close();

    await print(table(
      ['OPERATION', 'OPS', 'SECONDS', 'OPS/S'],
      rows.map((r) => [r.op, formatCount(r.ops), r.seconds.toFixed(3), formatRate(r.ops / r.seconds)]),
    ));
    await print(`store after the run: hot ${stats.counts.hot}, warm ${stats.counts.warm}, cold ${stats.counts.cold}; ` +
      `files: warm ${formatBytes(stats.warmBlockFileBytes + stats.warmVarFileBytes)}, cold ${formatBytes(stats.coldFileBytes)}`);
  } finally {
    stopWatching();
    fs.rmSync(folder, { recursive: true, force: true });
  }
}
