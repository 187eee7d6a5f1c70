// One reopen of a closed store, in a process of its own (forked per
// measurement by bench/runner.mjs), so nothing the writer allocated or mapped
// is reused and what the open reads and adds to RSS is this process's alone:
//   node bench/reopen.mjs <store> <spec json>
// <spec> is the adapter's spec() plus `id`, the id the first get reads.
// Prints one line of JSON:
//   ms          open + first get, wall clock
//   found       whether the get found the record
//   readBytes   /proc/self/io read_bytes: bytes the open made the device read
//               (page cache misses of read() and of mmap faults alike; 0 when
//               everything was cached)
//   rchar       /proc/self/io rchar: bytes returned by read()-like calls,
//               cached or not; pages reached through mmap are not in it
//   rss, rssAnon, rssFile   what the open added to VmRSS, RssAnon, RssFile
//   majorFaults page faults that had to wait for the disk
//   counts      tierstore's counts() after the get (untimed)
//   firstFilterMs  when spec.firstFilter ({query, k, filter}) is given: the
//               first filtered recallAsync after the get, wall clock
//   firstFilterReadBytes  the bytes it made the device read
// A field this system cannot give (no /proc) is left out.

import { readFileSync } from 'node:fs';
import { adapterFor } from './stores.mjs';

const [storeName, specArg] = process.argv.slice(2);
const spec = JSON.parse(specArg);

function procText(file) {
  try { return readFileSync(file, 'utf8'); } catch { return undefined; }
}
function fields(text, names, scale = 1) {
  if (text === undefined) return {};
  const out = {};
  for (const [key, name] of Object.entries(names)) {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    if (m) out[key] = Number(m[1]) * scale;
  }
  return out;
}
const IO = { rchar: 'rchar', readBytes: 'read_bytes' };
const STATUS = { rss: 'VmRSS', rssAnon: 'RssAnon', rssFile: 'RssFile' };

const a = adapterFor(storeName);
a.attach(spec);
await a.prepare(); // the library and its native module, not the store

// Reading /proc/self/io is itself a read(): its own bytes are taken off rchar.
const status0 = fields(procText('/proc/self/status'), STATUS, 1024);
const faults0 = process.resourceUsage().majorPageFault;
const ioText0 = procText('/proc/self/io');
const t0 = process.hrtime.bigint();
const found = await a.reopen(spec.id);
const t1 = process.hrtime.bigint();
const ioText1 = procText('/proc/self/io');
const faults1 = process.resourceUsage().majorPageFault;
const status1 = fields(procText('/proc/self/status'), STATUS, 1024);

const io0 = fields(ioText0, IO);
const io1 = fields(ioText1, IO);
const out = { ms: Number(t1 - t0) / 1e6, found };
if (io0.readBytes !== undefined && io1.readBytes !== undefined) out.readBytes = io1.readBytes - io0.readBytes;
if (io0.rchar !== undefined && io1.rchar !== undefined) out.rchar = io1.rchar - io0.rchar - Buffer.byteLength(ioText0);
for (const k of Object.keys(STATUS)) if (status0[k] !== undefined && status1[k] !== undefined) out[k] = status1[k] - status0[k];
out.majorFaults = faults1 - faults0;
if (typeof a.counts === 'function') out.counts = a.counts();
if (spec.firstFilter && typeof a.topkFiltered === 'function') {
  const { query, k, filter } = spec.firstFilter;
  const q = Float32Array.from(query);
  const before = fields(procText('/proc/self/io'), IO);
  const f0 = process.hrtime.bigint();
  await a.topkFiltered(q, k, filter);
  out.firstFilterMs = Number(process.hrtime.bigint() - f0) / 1e6;
  const after = fields(procText('/proc/self/io'), IO);
  if (before.readBytes !== undefined && after.readBytes !== undefined) out.firstFilterReadBytes = after.readBytes - before.readBytes;
}
await a.close();
process.stdout.write(`\n${JSON.stringify(out)}\n`);
