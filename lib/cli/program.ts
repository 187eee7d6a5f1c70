// The `tierstore` command line, built with commander: one subcommand per
// operation. Read commands (stats, list, get, export, verify, recall) open
// the store read-only, so they never modify it and can share it with other
// readers; write commands (import, migrate, compact, serve) take the writer's
// lock. Every command has --help; failures are thrown and mapped to exit
// codes by main.ts (0 ok, 1 failure, 2 usage).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command, Option } from 'commander';

// export.js (Arrow, Parquet) and server.js (fastify) are loaded by the commands that use them, keeping start-up quick.
import type { ExportFormat } from '../export.js';
import { open, type MemoryStore } from '../store.js';
import type { ListOptions, OpenOptions, RecallOptions, StoreStats, TierSelector } from '../types.js';
import { runBuiltin, runSuite, suiteAvailable } from './bench.js';
import {
  addWriteOptions,
  CliError,
  EXIT_FAILURE,
  finiteNumber,
  integerIn,
  isEmptyLocation,
  openForReading,
  openForWriting,
  openOptionsOf,
  print,
  storeDir,
  tierOption,
  UsageError,
  withStore,
  type WriteFlags,
} from './common.js';
import { runDemo } from './demo.js';
import { formatBytes, formatCounts, memoryTable, toJson } from './format.js';
import { Progress, formatCount } from './progress.js';
import { addFilterOptions, filterArgs, filterOf, withFlagNames, type FilterFlags } from './filters.js';
import { readQueryFile } from './query.js';
import { verifyStore } from './verify.js';

/** Set by a command that finished but failed a check (verify, bench): main.ts exits with it. */
export interface RunState {
  exitCode: number;
}

const EXAMPLES = `
Examples:
  $ tierstore demo                                   # a guided tour on a generated store
  $ tierstore --dir ./mem import memories.jsonl --dimensions 768
  $ tierstore --dir ./mem stats
  $ tierstore --dir ./mem list --tier warm --limit 5
  $ tierstore --dir ./mem recall --query q.json --k 5 --metadata user=alice
  $ tierstore --dir ./mem list --tier all --created-after 2026-01-01 --metadata tag=red --metadata tag=blue
  $ tierstore serve --root ./spaces --dimensions 768   # one store per X-Memory-Space
  $ tierstore --dir ./mem export --format parquet --out mem.parquet
  $ tierstore --dir ./mem verify

Exit codes: 0 ok, 1 failure (the error and its code on stderr), 2 usage error.
The store: --dir DIR or the environment variable TIERSTORE_DIR.`;

export function buildProgram(state: RunState, version: string): Command {
  const program = new Command('tierstore');
  // Settings made before .command() are inherited by every subcommand.
  program
    .description('A tiered store for AI-agent memories: inspect, import, export, migrate, verify and serve a store.')
    .version(version, '-V, --version', 'print the version')
    .addOption(new Option('-d, --dir <path>', 'the store directory').env('TIERSTORE_DIR'))
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText('after', EXAMPLES);

  program
    .command('stats')
    .description('counts per tier, dimensions and file sizes')
    .option('--json', 'print the StoreStats object as JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const dir = storeDir(command);
      await withStore(openForReading(dir), async (store) => {
        const stats = store.stats();
        await print(flags.json ? toJson({ path: path.resolve(dir), ...stats }) : statsText(dir, stats));
      });
    });

  const listCommand = program
    .command('list')
    .description('one page of memories of a tier (default hot), by offset or by cursor; the filter flags keep only matching records')
    .addOption(tierOption('--tier <tier>', 'tier to list', true).default('hot'))
    .option('--limit <n>', 'records per page, 1..1000', integerIn(1, 1000), 100)
    .option('--offset <n>', 'skip this many records (not with --cursor)', integerIn(0))
    .option('--cursor <cursor>', 'the nextCursor of the previous page (pages in O(limit))')
    .option('--json', 'print the ListPage as JSON')
    .option('--include-embeddings', 'with --json: include each embedding as an array');
  addFilterOptions(listCommand, true)
    .action(async (flags: FilterFlags & {
      tier: TierSelector; limit: number; offset?: number; cursor?: string; json?: boolean; includeEmbeddings?: boolean;
    }, command: Command) => {
      if (flags.cursor !== undefined && flags.offset !== undefined) throw new UsageError('pass either --cursor or --offset, not both');
      const filter = filterOf(flags, true);
      await withStore(openForReading(storeDir(command)), async (store) => {
        const options: ListOptions = { tier: flags.tier, limit: flags.limit };
        if (flags.offset !== undefined) options.offset = flags.offset;
        if (flags.cursor !== undefined) options.cursor = flags.cursor;
        if (flags.includeEmbeddings) options.includeEmbeddings = true;
        if (filter !== undefined) options.filter = filter;
        const page = await withFlagNames(() => store.list(options));
        if (flags.json) {
          await print(toJson(page));
          return;
        }
        const { offset, returned, nextCursor } = page.pagination;
        const tierTotal = flags.tier === 'all' ? page.tierCounts.total : page.tierCounts[flags.tier];
        // The tier's total is unfiltered: a filtered page says how many of its records matched.
        const range = returned === 0 ? (filter === undefined ? 'no records' : 'no records matching the filter')
          : filter !== undefined
            ? `${returned} records matching the filter (${flags.cursor === undefined ? `from offset ${offset}` : 'from a cursor'}; ${tierTotal} in all)`
            : flags.cursor === undefined
              ? `records ${offset + 1}-${offset + returned} of ${tierTotal}`
              : `${returned} records (from a cursor) of ${tierTotal}`;
        const lines = [`${flags.tier}: ${range}  (${formatCounts(page.tierCounts)})`];
        if (returned > 0) lines.push(memoryTable(page.memories));
        // A cursor keeps its filter: the next page is asked for with the same filter flags.
        if (nextCursor !== undefined) {
          lines.push(`next page: --tier ${flags.tier} --limit ${flags.limit}${filterArgs(flags)} --cursor ${nextCursor}`);
        }
        await print(lines.join('\n'));
      });
    });

  program
    .command('get')
    .description('print one memory as JSON')
    .argument('<id>', 'the memory id')
    .option('--embedding', 'include the embedding (as an array)')
    .action(async (id: string, flags: { embedding?: boolean }, command: Command) => {
      const dir = storeDir(command);
      await withStore(openForReading(dir), async (store) => {
        const memory = store.get(id, { includeEmbedding: flags.embedding === true });
        if (memory === undefined) throw new CliError(`no memory with id ${JSON.stringify(id)} in ${dir}`);
        await print(toJson(memory));
      });
    });

  addWriteOptions(
    program
      .command('import')
      .description('add the records of a JSONL, Parquet or Arrow file (as written by export); creates the store with --dimensions')
      .argument('<file>', 'the file to read')
      .addOption(new Option('--format <format>', 'file format (default: from the extension)').choices(['jsonl', 'parquet', 'arrow']))
      .option('--dimensions <n>', 'embedding dimensions, to create a new store (read from a JSONL file when omitted)', integerIn(1, 65536))
      .option('--no-keep-tiers', 'put every record in hot (default: back into the tier it was exported from)')
      .option('--batch-size <n>', 'records per write batch', integerIn(1, 65536)),
  ).action(async (file: string, flags: WriteFlags & {
    format?: ExportFormat; dimensions?: number; keepTiers: boolean; batchSize?: number;
  }, command: Command) => {
    const dir = storeDir(command);
    if (!fs.existsSync(file)) throw new CliError(`${file}: no such file`);
    const { formatFromPath, importFile } = await import('../export.js');
    const format = flags.format ?? formatFromPath(file);
    if (format === undefined) throw new UsageError(`cannot tell the format of ${file} from its extension: pass --format jsonl|parquet|arrow`);
    const options: OpenOptions = openOptionsOf(flags);
    const isNew = isEmptyLocation(dir);
    if (flags.dimensions !== undefined) {
      options.dimensions = flags.dimensions;
    } else if (isNew) {
      const inferred = format === 'jsonl' ? dimensionsOfJsonl(file) : undefined;
      if (inferred === undefined) throw new UsageError(`${dir} holds no store yet: pass --dimensions N to create one`);
      options.dimensions = inferred;
    }
    const created = !fs.existsSync(dir);
    let ok = false;
    await withStore(open(dir, options), async (store) => {
      const progress = new Progress('import');
      let result: { records: number };
      try {
        result = await importFile(store, file, {
          format,
          keepTiers: flags.keepTiers,
          ...(flags.batchSize !== undefined ? { batchSize: flags.batchSize } : {}),
          onProgress: (done, total) => progress.update(done, total),
        });
      } finally {
        progress.finish();
      }
      ok = true;
      const into = isNew ? `a new store at ${dir} (${store.dimensions} dimensions)` : dir;
      await print(`imported ${formatCount(result.records)} records from ${file} into ${into}\nnow ${formatCounts(store.counts())}`);
    }).finally(() => {
      // A failed import into a store it created leaves no half-filled store behind.
      if (!ok && created) {
        fs.rmSync(dir, { recursive: true, force: true });
        process.stderr.write(`import: removed the store it had created at ${dir}\n`);
      }
    });
  });

  program
    .command('export')
    .description('write a tier (default all) as JSONL, Parquet or Arrow IPC, to a file or stdout')
    .argument('[file]', "output file; '-' or omitted: stdout")
    .option('-o, --out <file>', 'output file (same as the argument)')
    .addOption(new Option('--format <format>', 'default: from the file extension, else jsonl').choices(['jsonl', 'parquet', 'arrow']))
    .addOption(tierOption('--tier <tier>', 'tier to export', true).default('all'))
    .option('--batch-size <n>', 'records per batch / row group', integerIn(1, 65536))
    .addOption(new Option('--compression <codec>', 'parquet: column compression (default snappy)').choices(['snappy', 'zstd', 'uncompressed']))
    .addOption(new Option('--arrow-format <kind>', "arrow: 'file' (Feather v2; default) or 'stream' (default for .arrows)")
      .choices(['file', 'stream']))
    .action(async (file: string | undefined, flags: {
      out?: string; format?: ExportFormat; tier: TierSelector; batchSize?: number;
      compression?: 'snappy' | 'zstd' | 'uncompressed'; arrowFormat?: 'file' | 'stream';
    }, command: Command) => {
      if (file !== undefined && flags.out !== undefined && file !== flags.out) {
        throw new UsageError('give the output file once: as the argument or with --out');
      }
      const { exportStore, formatFromPath } = await import('../export.js');
      const target = flags.out ?? file ?? '-';
      const toStdout = target === '-';
      const format: ExportFormat = flags.format ?? (toStdout ? undefined : formatFromPath(target)) ?? 'jsonl';
      if (toStdout && format !== 'jsonl' && process.stdout.isTTY) {
        throw new UsageError(`refusing to write binary ${format} to a terminal: pass --out FILE or redirect stdout`);
      }
      const dir = storeDir(command);
      await withStore(openForReading(dir), async (store) => {
        // Progress on stderr, but not over JSONL scrolling past on the same terminal.
        const progress = new Progress('export', undefined, { enabled: !(toStdout && process.stdout.isTTY) });
        let result: { records: number; bytes: number };
        try {
          result = await exportStore(store, toStdout ? process.stdout : target, {
            format,
            tier: flags.tier,
            ...(flags.batchSize !== undefined ? { batchSize: flags.batchSize } : {}),
            ...(flags.compression !== undefined ? { compression: flags.compression } : {}),
            ...(flags.arrowFormat !== undefined ? { arrowFormat: flags.arrowFormat } : {}),
            onProgress: (done, total) => progress.update(done, total),
          });
        } finally {
          progress.finish();
        }
        const summary = `exported ${formatCount(result.records)} records (${flags.tier}) as ${format}, ${formatBytes(result.bytes)}`;
        if (!toStdout) await print(`${summary} to ${target}`);
        else if (process.stderr.isTTY) process.stderr.write(`${summary} to stdout\n`);
      });
    });

  addWriteOptions(
    program
      .command('migrate')
      .description("apply the capacities now: demote hot over --hot-capacity to warm, warm over --warm-capacity to cold")
      .option('--json', 'print the MigrationReport and counts as JSON'),
  ).action(async (flags: WriteFlags & { json?: boolean }, command: Command) => {
    await withStore(openForWriting(storeDir(command), openOptionsOf(flags)), async (store) => {
      const before = store.counts();
      const report = store.migrate();
      const counts = store.counts();
      if (flags.json) {
        await print(toJson({ ...report, before, counts }));
        return;
      }
      await print(
        `migrated: ${report.hotToWarm} hot→warm, ${report.hotToCold} hot→cold, ${report.warmToCold} warm→cold in ${report.batches} batches\n` +
          `before: ${formatCounts(before)}\nafter:  ${formatCounts(counts)}`);
    });
  });

  program
    .command('compact')
    .description('reclaim space in warm and cold, and shrink the hot log')
    .option('--json', 'print the CompactionReport as JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      await withStore(openForWriting(storeDir(command), {}), async (store) => {
        const report = store.compact();
        if (flags.json) {
          await print(toJson(report));
          return;
        }
        await print([
          `compacted ${storeDir(command)}`,
          `warm: ${formatBytes(report.warmBytesReclaimed)} reclaimed`,
          `cold: ${formatBytes(report.coldBytesReclaimed)} reclaimed, segments ${report.coldSegmentsBefore} → ${report.coldSegmentsAfter}`,
          `hot log: ${formatBytes(report.hotLogBytesBefore)} → ${formatBytes(report.hotLogBytesAfter)}`,
        ].join('\n'));
      });
    });

  program
    .command('verify')
    .description('read every record of every tier and check every checksum, the counts and that no id appears twice')
    .option('--json', 'print the result as JSON')
    .option('--batch-size <n>', 'records read per native call', integerIn(1, 65536), 1024)
    .action(async (flags: { json?: boolean; batchSize: number }, command: Command) => {
      const dir = storeDir(command);
      // A store too damaged to open fails here, with CORRUPTION naming the file.
      await withStore(openForReading(dir), async (store) => {
        // Every record's checksums first: damage is listed whole, record by record.
        const report = store.verify();
        if (report.damaged.length > 0) {
          if (flags.json) {
            const first = report.damaged[0]!;
            await print(toJson({
              ok: false, records: report.records, bytes: report.bytes, damaged: report.damaged,
              error: { code: 'CORRUPTION', message: `${first.file}: ${first.reason}` },
            }));
          } else {
            const lines = report.damaged.map((d) =>
              `damaged: ${d.tier} ${d.id === undefined ? 'columns' : JSON.stringify(d.id)} in ${d.file}: ${d.reason}`);
            lines.push(`error: CORRUPTION: ${report.damaged.length} damaged, ${formatCount(report.records)} records whole`);
            process.stderr.write(`${lines.join('\n')}\n`);
          }
          state.exitCode = EXIT_FAILURE;
          return;
        }
        let done = 0;
        let result;
        try {
          result = verifyStore(store, flags.batchSize, (n) => (done = n));
        } catch (error) {
          if (flags.json) await print(toJson({ ok: false, readBeforeFailure: done, error: errorJson(error) }));
          else process.stderr.write(`verify: FAILED (${formatCount(done)} records checked before the batch that failed)\n`);
          throw error;
        }
        if (flags.json) {
          // One shape whether or not damage was found: the report's fields first.
          await print(toJson({ ...result, records: report.records, bytes: report.bytes, damaged: report.damaged }));
        } else {
          const lines = (['hot', 'warm', 'cold'] as const).map((t) => `${t.padEnd(5)} ${formatCount(result.read[t])} records read`);
          lines.push(result.ok
            ? `ok: ${formatCount(result.read.total)} records, every data and embedding checksum matched, counts agree, no id twice`
            : `FAILED:\n${result.problems.map((p) => `  - ${p}`).join('\n')}`);
          await print(lines.join('\n'));
        }
        if (!result.ok) state.exitCode = EXIT_FAILURE;
      });
    });

  const recallCommand = program
    .command('recall')
    .description('the k memories most similar to a query vector (exact cosine over every tier; with filter flags, among the matching records only)')
    .option('-q, --query <file>', "query vector: JSON array (or {\"embedding\": [...]}) or raw little-endian float32 (.f32/.bin); '-' reads stdin")
    .option('--id <id>', 'use the embedding of this stored memory as the query')
    .option('-k, --k <n>', 'hits to return, 1..10000', integerIn(1, 10_000), 10)
    .addOption(tierOption('--tier <tier>', 'tiers to search', true).default('all'))
    .option('--min-confidence <x>', 'only memories with confidence >= x', finiteNumber)
    .option('--json', 'print the hits as JSON')
    .option('--include-embeddings', 'with --json: include each embedding');
  addFilterOptions(recallCommand, false)
    .action(async (flags: FilterFlags & {
      query?: string; id?: string; k: number; tier: TierSelector; minConfidence?: number; json?: boolean; includeEmbeddings?: boolean;
    }, command: Command) => {
      if ((flags.query === undefined) === (flags.id === undefined)) throw new UsageError('pass one of --query FILE or --id ID');
      const filter = filterOf(flags, false);
      const query = flags.query !== undefined ? readQueryFile(flags.query) : undefined;
      await withStore(openForReading(storeDir(command)), async (store) => {
        const vector = query ?? embeddingOf(store, flags.id!);
        const options: RecallOptions = { k: flags.k, tier: flags.tier };
        if (flags.minConfidence !== undefined) options.minConfidence = flags.minConfidence;
        if (flags.includeEmbeddings) options.includeEmbeddings = true;
        if (filter !== undefined) options.filter = filter;
        const hits = await withFlagNames(() => store.recallAsync(vector, options), flags.id !== undefined ? `the embedding of --id ${flags.id}` : '--query');
        if (flags.json) await print(toJson(hits));
        else if (hits.length === 0) await print('no hits');
        else await print(memoryTable(hits.map((h) => h.memory), hits.map((h) => h.score)));
      });
    });

  program
    .command('bench')
    .description('run the benchmark suite (repository checkout) or a small built-in tierstore benchmark (installed package)')
    .argument('[suite-args...]', 'passed on to bench/run.mjs (e.g. --smoke, --only tierstore, --json PATH)')
    .option('--builtin', 'run the built-in benchmark even in a repository checkout')
    .option('--n <count>', 'records (suite default 100000, built-in default 10000)', integerIn(1))
    .option('--seed <n>', 'PRNG seed', integerIn(0))
    .option('--dimensions <n>', 'built-in only: embedding dimensions (default 768)', integerIn(1, 65536))
    .allowUnknownOption()
    .addHelpText('after', '\nIn a repository checkout `tierstore bench --smoke` runs `node bench/run.mjs --smoke`: options other than\n' +
      '--builtin, --n, --seed and --dimensions go to the suite; `tierstore bench -- --help` shows its own help.\n' +
      'In an installed package (no bench/ folder) the built-in benchmark runs: put, putMany, get, iterate, list, recall.')
    .action(async (suiteArgs: string[], flags: { builtin?: boolean; n?: number; seed?: number; dimensions?: number }) => {
      if (flags.builtin || !suiteAvailable()) {
        if (suiteArgs.length > 0) {
          throw new UsageError(`the built-in benchmark takes only --n, --seed and --dimensions, not: ${suiteArgs.join(' ')}`);
        }
        await runBuiltin({ n: flags.n ?? 10_000, dimensions: flags.dimensions ?? 768, seed: flags.seed ?? 42 });
        return;
      }
      if (flags.dimensions !== undefined) throw new UsageError('--dimensions applies to the built-in benchmark only (add --builtin)');
      state.exitCode = await runSuite([
        ...(flags.n !== undefined ? ['--n', String(flags.n)] : []),
        ...(flags.seed !== undefined ? ['--seed', String(flags.seed)] : []),
        ...suiteArgs,
      ]);
    });

  program
    .command('demo')
    .description('create a store in a temporary folder from generated memories, migrate it across the tiers, list each tier and recall')
    .option('--n <count>', 'memories to generate', integerIn(10, 200_000), 2000)
    .option('--seed <n>', 'PRNG seed', integerIn(0), 1)
    .option('--keep', 'keep the store (and print where it is) instead of deleting it')
    .action(async (flags: { n: number; seed: number; keep?: boolean }) => {
      await runDemo({ n: flags.n, seed: flags.seed, keep: flags.keep === true });
    });

  addWriteOptions(
    program
      .command('serve')
      .description('serve the store (--dir) or a directory of memory spaces (--root) over HTTP until Ctrl-C, with the memory API of engram (the agent-memory server tierstore can stand in for: docs/http.md)')
      .option('-p, --port <port>', 'port (0: any free port)', integerIn(0, 65535), 8080)
      .option('--host <host>', 'interface to listen on (a non-loopback host needs --token)', '127.0.0.1')
      .addOption(new Option('--token <token>', 'bearer token required on write routes').env('TIERSTORE_TOKEN'))
      .option('--protect-reads', 'require the token on read routes too (not on /health)')
      .option('--body-limit <bytes>', 'largest request body in bytes', integerIn(1, 2 ** 30))
      .option('--log', "fastify's JSON request log on stdout")
      .option('--root <dir>', 'serve one store per memory space in DIR/NAME, chosen by the X-Memory-Space header (instead of --dir); needs --dimensions')
      .option('--max-open-spaces <n>', 'with --root: stores kept open (least recently used idle ones are closed first), default 64', integerIn(1, 65536))
      .option('--dimensions <n>', 'create the store with these dimensions if it does not exist (with --root: of every new space; required)',
        integerIn(1, 65536))
      .addHelpText('after', '\nWith --root DIR, a request names its space with the header X-Memory-Space: NAME (no header: the space\n' +
        "'default'; names are 1-64 characters of A-Z a-z 0-9 . _ - not starting with '.'). A write to a new space creates\n" +
        'DIR/NAME; GET /api/v1/spaces lists the spaces and DELETE /api/v1/spaces/NAME (a write: token-protected) removes one.'),
  ).action(async (flags: WriteFlags & {
    port: number; host: string; token?: string; protectReads?: boolean; bodyLimit?: number; log?: boolean; dimensions?: number;
    root?: string; maxOpenSpaces?: number;
  }, command: Command) => {
    const storeOptions = openOptionsOf(flags);
    let source: { dir: string } | { root: string; dimensions: number; maxOpenSpaces?: number };
    if (flags.root !== undefined) {
      // TIERSTORE_DIR from the environment gives way to --root; --dir on the command line does not.
      if (command.getOptionValueSourceWithGlobals('dir') === 'cli') throw new UsageError('pass either --dir (one store) or --root (a directory of spaces), not both');
      if (flags.root === '') throw new UsageError('--root needs a directory');
      if (flags.dimensions === undefined) throw new UsageError('--root needs --dimensions N: the dimensions of the spaces a write creates');
      source = { root: flags.root, dimensions: flags.dimensions, ...(flags.maxOpenSpaces !== undefined ? { maxOpenSpaces: flags.maxOpenSpaces } : {}) };
    } else {
      if (flags.maxOpenSpaces !== undefined) throw new UsageError('--max-open-spaces goes with --root');
      source = { dir: storeDir(command) };
      if (flags.dimensions !== undefined) storeOptions.dimensions = flags.dimensions;
    }
    const { startServer } = await import('../server.js');
    const server = await startServer({
      ...source,
      port: flags.port,
      host: flags.host,
      storeOptions,
      ...(flags.token !== undefined ? { token: flags.token } : {}),
      ...(flags.protectReads ? { protectReads: true } : {}),
      ...(flags.bodyLimit !== undefined ? { bodyLimit: flags.bodyLimit } : {}),
      ...(flags.log ? { logger: true } : {}),
    });
    const serving = 'dir' in source
      ? `store ${path.resolve(source.dir)}`
      : `spaces in ${path.resolve(source.root)}, ${source.dimensions} dimensions, at most ${source.maxOpenSpaces ?? 64} open`;
    await print(`tierstore serve: listening on ${server.url} (${serving}); Ctrl-C to stop`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    // A second signal while draining means "now": exit without waiting for requests in flight.
    const force = (): void => process.exit(EXIT_FAILURE);
    process.once('SIGINT', force);
    process.once('SIGTERM', force);
    process.stderr.write(`tierstore serve: ${signal}, finishing requests in flight and closing the ${'dir' in source ? 'store' : 'open stores'}\n`);
    await server.close();
    process.stderr.write('tierstore serve: closed\n');
  });

  return program;
}

function embeddingOf(store: MemoryStore, id: string): Float32Array {
  const memory = store.get(id, { includeEmbedding: true });
  if (memory === undefined) throw new CliError(`--id: no memory with id ${JSON.stringify(id)} in ${store.path}`);
  return memory.embedding!;
}

function errorJson(error: unknown): { code?: string; message: string } {
  const e = error as { code?: unknown; message?: unknown };
  return { ...(typeof e.code === 'string' ? { code: e.code } : {}), message: String(e.message ?? error) };
}

/** The first record of a JSONL file tells the dimensions (its embedding's length). */
function dimensionsOfJsonl(file: string): number | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    let text = '';
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      text += chunk.toString('utf8', 0, n);
      const newline = text.indexOf('\n');
      if (newline !== -1 && text.slice(0, newline).trim() !== '') {
        text = text.slice(0, newline);
        break;
      }
      if (text.length > 256 << 20) return undefined;
    }
    const first = JSON.parse(text.trim()) as { embedding?: unknown };
    return Array.isArray(first.embedding) && first.embedding.length > 0 ? first.embedding.length : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function statsText(dir: string, s: StoreStats): string {
  const rows: [string, string][] = [
    ['store', `${path.resolve(dir)} (${s.dimensions} dimensions)`],
    ['records', `${formatCount(s.counts.total)}: hot ${formatCount(s.counts.hot)}, warm ${formatCount(s.counts.warm)}, cold ${formatCount(s.counts.cold)}`],
    ['hot', `${formatBytes(s.hotBytes)} in RAM, log ${formatBytes(s.hotLogBytes)}`],
    ['warm', `blocks ${formatBytes(s.warmBlockFileBytes)} (${formatCount(s.warmSlots)} slots), variable section ${formatBytes(s.warmVarFileBytes)} (${formatBytes(s.warmVarLiveBytes)} live)`],
    ['cold', `${s.coldSegments} segment${s.coldSegments === 1 ? '' : 's'}, ${formatBytes(s.coldFileBytes)}, ${formatCount(s.coldDeletedRows)} deleted rows`],
    ['index', `${formatBytes(s.indexFileBytes)} on disk, ${formatBytes(s.indexMemoryBytes)} in RAM${s.indexRebuilt ? `, rebuilt at open (${s.indexRebuildReason})` : ''}`],
    ['sequence', String(s.sequence)],
  ];
  if (s.recoveredDuplicates > 0 || s.tornLogBytes > 0 || s.tornWarmCopies > 0) {
    rows.push(['at open', `${formatCount(s.recoveredDuplicates)} older copies of moved records dropped, ${s.tornLogBytes} torn log bytes dropped, ${formatCount(s.tornWarmCopies)} torn warm copies dropped (the log held them)`]);
  }
  return rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n');
}
