#!/usr/bin/env node
// Entry point of the `tierstore` command (package.json "bin" → dist/cli/main.js).
// Runs one command and exits with 0 (ok), 1 (failure: the error, with its
// TierStoreError code, on stderr) or 2 (usage: unknown command or option,
// missing argument, bad number). --help and --version exit 0.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CommanderError } from 'commander';

import { PACKAGE_ROOT } from './bench.js';
import { describeFailure, EXIT_OK, EXIT_USAGE } from './common.js';
import { buildProgram, type RunState } from './program.js';

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const state: RunState = { exitCode: EXIT_OK };
  const program = buildProgram(state, packageVersion());
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has already printed its message, or the help or version text (its exit code 0).
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const { text, exitCode } = describeFailure(error);
    process.stderr.write(`${text}\n`);
    return exitCode;
  }
}

if (require.main === module) {
  // A closed pipe (`tierstore list | head`) ends the output, not the command with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
    throw error;
  });
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
