// `tierstore demo`: the first command a newcomer runs. It creates a store in
// a temporary folder from a generated data set, migrates it so all three
// tiers hold records, reopens it (everything persisted), lists a few memories
// of each tier, recalls one memory from the cold tier (it comes back first,
// score 1), and deletes the folder unless --keep. Runs in a few seconds.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { open, type MemoryStore } from '../store.js';
import type { Tier } from '../types.js';
import { CliError, print, removeOnInterrupt, yieldToEventLoop } from './common.js';
import { generateMemories } from './data.js';
import { formatCounts, memoryTable } from './format.js';
import { Progress } from './progress.js';

export interface DemoOptions {
  n: number;
  seed: number;
  keep: boolean;
}

const DIMENSIONS = 64;
const TIERS: readonly Tier[] = ['hot', 'warm', 'cold'];

export async function runDemo(options: DemoOptions): Promise<void> {
  const { n } = options;
  const started = Date.now();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-demo-'));
  const dir = path.join(folder, 'store');
  let store: MemoryStore | undefined;
  const stopWatching = options.keep ? () => undefined : removeOnInterrupt(folder);
  try {
    await print(`tierstore demo: ${n} generated memories, ${DIMENSIONS}-dimensional embeddings (seed ${options.seed})\n`);

    // 1. Create the store and put everything; a hot capacity of n keeps it all hot for now.
    const { memories } = generateMemories(n, DIMENSIONS, options.seed);
    store = open(dir, { dimensions: DIMENSIONS, hotCapacity: n });
    const progress = new Progress('put');
    const batch = 500;
    for (let i = 0; i < n; i += batch) {
      store.putMany(memories.slice(i, i + batch));
      progress.update(Math.min(n, i + batch), n);
      await yieldToEventLoop();
    }
    progress.finish();
    await print(`1. created a store at ${dir}\n   put ${n} memories: ${formatCounts(store.counts())}`);
    store.close();

    // 2. Reopen with small capacities and migrate: the lowest-activation memories move down.
    const hotCapacity = Math.max(1, Math.floor(n * 0.15));
    const warmCapacity = Math.max(1, Math.floor(n * 0.35));
    store = open(dir, { hotCapacity, warmCapacity });
    const report = store.migrate();
    await print(
      `2. reopened with hotCapacity ${hotCapacity}, warmCapacity ${warmCapacity} and migrated:\n` +
        `   ${report.hotToWarm} hot→warm, ${report.warmToCold} warm→cold, ${report.hotToCold} hot→cold in ${report.batches} batches\n` +
        `   now ${formatCounts(store.counts())}`);
    store.close();

    // 3. Reopen read-only (what `tierstore list` does) and show each tier.
    store = open(dir, { readOnly: true });
    const counts = store.counts();
    await print(`3. reopened read-only: ${formatCounts(counts)} (everything persisted)`);
    for (const tier of TIERS) {
      const page = store.list({ tier, limit: 3 });
      await print(`\n   ${tier}: first ${page.count} of ${counts[tier]}\n${indent(memoryTable(page.memories), 3)}`);
    }

    // 4. Recall with the embedding of a cold memory: exact cosine over every tier.
    const probe = store.list({ tier: 'cold', limit: 1 }).memories[0] ?? store.list({ tier: 'all', limit: 1 }).memories[0];
    if (probe === undefined) throw new CliError('demo: the store is empty after putting memories');
    const query = memories.find((m) => m.id === probe.id)!.embedding;
    const hits = store.recall(query, { k: 5 });
    await print(
      `\n4. recall with the embedding of ${probe.id} (${probe.tier}, about ${String(probe.metadata['topic'])}): ` +
        'top 5 of all tiers, best first\n' +
        indent(memoryTable(hits.map((h) => h.memory), hits.map((h) => h.score)), 3));
    if (hits[0]?.id !== probe.id) {
      throw new CliError(`demo: recall returned ${hits[0]?.id ?? 'nothing'} first, expected ${probe.id} itself`);
    }
    const sameTopic = hits.slice(1).filter((h) => h.memory.metadata['topic'] === probe.metadata['topic']).length;
    await print(`   ${probe.id} comes first with score ${hits[0].score.toFixed(4)}; ` +
      `${sameTopic} of the other ${hits.length - 1} share its topic (embeddings cluster by topic).`);
    store.close();

    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (options.keep) {
      await print(
        `\ndone in ${seconds} s. The store is kept at ${dir}; try:\n` +
          `   tierstore --dir ${dir} stats\n` +
          `   tierstore --dir ${dir} list --tier warm --limit 5\n` +
          `   tierstore --dir ${dir} get ${probe.id}\n` +
          `   tierstore --dir ${dir} verify\n` +
          `   rm -r ${folder}    # when done`);
    } else {
      await print(`\ndone in ${seconds} s. Deleted ${folder} (pass --keep to keep the store and explore it).`);
    }
  } finally {
    stopWatching();
    store?.close(); // a second close() is a no-op
    if (!options.keep) fs.rmSync(folder, { recursive: true, force: true });
  }
}

function indent(text: string, spaces: number): string {
  const pad = ' '.repeat(spaces);
  return text.split('\n').map((line) => pad + line).join('\n');
}
