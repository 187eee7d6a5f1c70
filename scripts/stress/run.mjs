// `npm run stress`: the long reliability runs (docs/durability.md), one after another,
// then one summary table.
//
//   npm run stress                          # everything, full length (about 35 minutes)
//   npm run stress -- --quick               # a short check of the same steps (2-3 minutes)
//   npm run stress -- --only crash,damage   # some steps: crash-relaxed, crash-sync (or crash), damage,
//                                           #   fuzz-native, threads
//   npm run stress -- --seed 7              # seeds of the crash and damage runs
//
// Steps (each a child process whose last line is `SUMMARY {json}` with name,
// operations, kills, cases, findings (strings), seconds):
//   crash-relaxed  node scripts/stress/crash.mjs --durability relaxed --kills 150
//   crash-sync     node scripts/stress/crash.mjs --durability sync --kills 60
//   damage         node scripts/stress/damage.mjs --seconds 600
//   fuzz-native    bash scripts/fuzz-native.sh 600          (libFuzzer targets; skipped if absent)
//   threads        node scripts/stress/threads.mjs --seconds 300  (reported missing if absent)
// A step without a SUMMARY line is judged by its exit status. The exit status
// is 1 when any step has findings or failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, parseSummary, printSummary, REPO_ROOT, STRESS_DIR } from './common.mjs';

const args = parseArgs(process.argv.slice(2), { quick: false, only: '', seed: 1 });
const q = args.quick;

const STEPS = [
  { name: 'crash-relaxed', cmd: [process.execPath, path.join(STRESS_DIR, 'crash.mjs'), '--durability', 'relaxed', '--kills', q ? '15' : '150', '--seed', String(args.seed), '--quiet'] },
  { name: 'crash-sync', cmd: [process.execPath, path.join(STRESS_DIR, 'crash.mjs'), '--durability', 'sync', '--kills', q ? '5' : '60', '--seed', String(args.seed + 1), '--quiet'] },
  { name: 'damage', cmd: [process.execPath, path.join(STRESS_DIR, 'damage.mjs'), '--seconds', q ? '45' : '600', '--seed', String(args.seed), '--quiet'] },
  { name: 'fuzz-native', script: path.join(REPO_ROOT, 'scripts', 'fuzz-native.sh'), cmd: ['bash', path.join(REPO_ROOT, 'scripts', 'fuzz-native.sh'), q ? '30' : '600'] },
  { name: 'threads', script: path.join(STRESS_DIR, 'threads.mjs'), cmd: [process.execPath, path.join(STRESS_DIR, 'threads.mjs'), '--seconds', q ? '20' : '300'] },
];

function selected(step) {
  if (args.only === '') return true;
  const names = args.only.split(',').map((s) => s.trim());
  return names.includes(step.name) || names.includes(step.name.split('-')[0]);
}

/** Runs a step, passing its output through (stderr as is, stdout indented), and returns its summary row. */
function runStep(step) {
  const started = Date.now();
  return new Promise((resolve) => {
    const shown = step.cmd.map((c, i) => (i === 0 && c === process.execPath ? 'node' : c.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, c) : c));
    process.stderr.write(`\n=== ${step.name}: ${shown.join(' ')}\n`);
    const child = spawn(step.cmd[0], step.cmd.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      process.stderr.write(d.replace(/^(?=.)/gm, '  '));
    });
    child.on('close', (code, signal) => {
      const seconds = Math.round((Date.now() - started) / 100) / 10;
      const s = parseSummary(out);
      const findings = [...(s?.findings ?? [])];
      if (!s) findings.push(`${step.name} printed no SUMMARY line (exit code ${code}, signal ${signal})`);
      else if (code !== 0 && findings.length === 0) findings.push(`${step.name} exited with code ${code}, signal ${signal}`);
      resolve({
        name: step.name,
        status: findings.length === 0 ? 'ok' : 'FINDINGS',
        operations: s?.operations ?? null,
        kills: s?.kills ?? null,
        cases: s?.cases ?? null,
        findings,
        known: s?.knownIssues ? Object.values(s.knownIssues).reduce((a, b) => a + b, 0) : null,
        seconds: s?.seconds ?? seconds,
        summary: s,
      });
    });
  });
}

const rows = [];
const started = Date.now();
for (const step of STEPS.filter(selected)) {
  if (step.script && !fs.existsSync(step.script)) {
    rows.push({ name: step.name, status: 'missing', operations: null, kills: null, cases: null, findings: [], known: null, seconds: 0, note: `${path.relative(REPO_ROOT, step.script)} does not exist` });
    continue;
  }
  rows.push(await runStep(step));
}

const cell = (v) => (v === null || v === undefined ? '–' : String(v));
const table = [
  '| step | status | operations | kills survived | cases tried | findings | known issues | seconds |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.name} | ${r.status} | ${cell(r.operations)} | ${cell(r.kills)} | ${cell(r.cases)} | ${r.findings.length} | ${cell(r.known)} | ${r.seconds} |`),
];
process.stdout.write(`\nStress run ${new Date(started).toISOString()}, ${Math.round((Date.now() - started) / 1000)} s, seed ${args.seed}${q ? ', --quick' : ''}\n\n${table.join('\n')}\n\n`);
for (const r of rows) {
  if (r.note) process.stdout.write(`${r.name}: ${r.note}\n`);
  for (const f of r.findings) process.stdout.write(`FINDING ${r.name}: ${f}\n`);
  if (r.summary?.knownIssues) for (const [k, n] of Object.entries(r.summary.knownIssues)) process.stdout.write(`known issue ${r.name}: ${k} × ${n}\n`);
}
printSummary({
  name: 'stress',
  steps: rows.map(({ summary: _s, ...r }) => r),
  findings: rows.flatMap((r) => r.findings.map((f) => `${r.name}: ${f}`)),
  seconds: Math.round((Date.now() - started) / 1000),
});
process.exitCode = rows.some((r) => r.status === 'FINDINGS') ? 1 : 0;
