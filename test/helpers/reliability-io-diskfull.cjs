// Child process of reliability-diskfull.test.ts: writes to a store until a
// write fails because the disk is full (a small tmpfs) or a file would pass
// the process's file-size limit (`ulimit -f`, with SIGXFSZ ignored so the
// write gets EFBIG instead of killing the process). Then it checks what
// still works in the same process, and closes. Explicit migrate() and
// compact() calls that fail are reported and the writes go on.
//
//   node reliability-io-diskfull.cjs <package root> <store path> <scenario json>
//
// scenario: { options (open options), large: every n-th record is large,
//   largeBytes, hugeAt / hugeBytes: op hugeAt writes a record of hugeBytes, batchEvery (every n-th call is a putMany of 4), deleteEvery,
//   upsertEvery, migrateEvery, compactEvery, maxOps, ballast (a file to
//   delete to free space after the failure, or null) }
//
// stdout, one line each (the parent reads them even if the child dies):
//   LIMITS {fileSizeLimit, sigxfszIgnored}
//   TRY <op json>          before each write call: {n, kind, ids: [[id, version]...]}
//   ACK <n>                after it returned
//   MAINTENANCE_FAILED {n, kind, ...}   a migrate() or compact() that failed (the writes go on)
//   FAILED {n, name, code, message, isTierStoreError}   the first write that failed (then no more)
//   AFTER {reads, stillFull, afterFree, close}    what worked after the failure
'use strict';
const fs = require('node:fs');

const [root, storePath, scenarioJson] = process.argv.slice(2);
const sc = JSON.parse(scenarioJson);
const { open } = require(root);
const DIMS = 16;

const emit = (tag, v) => process.stdout.write(`${tag} ${typeof v === 'string' ? v : JSON.stringify(v)}\n`);
const errInfo = (e) => ({
  name: e && e.name, code: e && e.code, message: String(e && e.message),
  isTierStoreError: !!(e && e.constructor && e.constructor.name === 'TierStoreError'),
});

function limits() {
  const lim = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max file size'));
  const value = lim.split(/\s+/)[3];
  const sigIgn = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('SigIgn:')).split(/\s+/)[1];
  return { fileSizeLimit: value === 'unlimited' ? null : Number(value), sigxfszIgnored: ((BigInt(`0x${sigIgn}`) >> 24n) & 1n) === 1n };
}

/** The content of version v of id: its size pattern depends on the op number. */
function contentOf(id, v, bytes) {
  const head = `${id}#${v}|`;
  let s = head;
  const unit = 'abcdefghij klmnopqrst uvwxyz 0123456789 ñé日€ '; // no surrogate pairs: sliced anywhere
  while (s.length < bytes) s += unit;
  return s.slice(0, Math.max(head.length, bytes - 8)) + '|end';
}
function recordOf(id, v, bytes) {
  const embedding = new Float32Array(DIMS);
  for (let d = 0; d < DIMS; d++) embedding[d] = Math.sin(v * 3 + d + id.length);
  return { id, content: contentOf(id, v, bytes), embedding, metadata: { v } };
}

function main() {
  emit('LIMITS', limits());
  const store = open(storePath, { dimensions: DIMS, ...sc.options });
  const versions = new Map();
  let nextId = 0;
  let failed = null;
  for (let n = 1; n <= sc.maxOps; n++) {
    const size = () => (n === sc.hugeAt ? sc.hugeBytes : n % sc.large === 0 ? sc.largeBytes : 40 + ((n * 97) % 1500));
    let op;
    if (sc.deleteEvery && n % sc.deleteEvery === 0 && versions.size > 0) {
      const id = `r${(n * 7) % nextId}`;
      op = { n, kind: 'delete', ids: [[id, -1]] };
    } else if (sc.migrateEvery && n % sc.migrateEvery === 0) {
      op = { n, kind: 'migrate', ids: [] };
    } else if (sc.compactEvery && n % sc.compactEvery === 0) {
      op = { n, kind: 'compact', ids: [] };
    } else if (sc.batchEvery && n % sc.batchEvery === 0) {
      const ids = [];
      for (let k = 0; k < 4; k++) ids.push([`r${nextId++}`, 1]);
      op = { n, kind: 'putMany', ids, bytes: size() };
    } else if (sc.upsertEvery && n % sc.upsertEvery === 0 && nextId > 0) {
      const id = `r${(n * 13) % nextId}`;
      op = { n, kind: 'put', ids: [[id, (versions.get(id) ?? 0) + 1]], bytes: size() };
    } else {
      op = { n, kind: 'put', ids: [[`r${nextId++}`, 1]], bytes: size() };
    }
    emit('TRY', op);
    try {
      if (op.kind === 'delete') store.delete(op.ids[0][0]);
      else if (op.kind === 'migrate') store.migrate();
      else if (op.kind === 'compact') store.compact();
      else if (op.kind === 'putMany') store.putMany(op.ids.map(([id, v]) => recordOf(id, v, op.bytes)));
      else store.put(recordOf(op.ids[0][0], op.ids[0][1], op.bytes));
    } catch (e) {
      if (op.kind === 'migrate' || op.kind === 'compact') {
        // Maintenance that cannot get space fails on its own; the writes go on.
        emit('MAINTENANCE_FAILED', { n, kind: op.kind, ...errInfo(e) });
        continue;
      }
      failed = { n, ...errInfo(e) };
      emit('FAILED', failed);
      break;
    }
    emit('ACK', String(n));
    for (const [id, v] of op.ids) {
      if (v < 0) versions.delete(id);
      else versions.set(id, v);
    }
  }
  if (failed === null) {
    emit('FAILED', { n: 0, name: 'none', code: 'NO_FAILURE', message: `${sc.maxOps} writes all succeeded`, isTierStoreError: false });
    store.close();
    return;
  }

  // What works in the same process after the failure?
  const after = {};
  try {
    let checked = 0;
    let wrong = 0;
    for (const [id, v] of versions) {
      if (checked++ % 7 !== 0) continue;
      const m = store.get(id);
      if (!m || m.metadata.v !== v || !m.content.startsWith(`${id}#${v}|`)) wrong++;
    }
    let iterated = 0;
    for (const m of store.iterate()) iterated += m ? 1 : 0;
    const c = store.counts();
    after.reads = { ok: true, checked: Math.ceil(versions.size / 7), wrong, iterated, total: c.total, counts: { hot: c.hot, warm: c.warm, cold: c.cold } };
  } catch (e) {
    after.reads = { ok: false, ...errInfo(e) };
  }
  const tryPut = (tag) => {
    const id = `after-${tag}`;
    emit('TRY', { n: -1, kind: 'put', ids: [[id, 1]], bytes: 100 });
    try {
      store.put(recordOf(id, 1, 100));
      emit('ACK', '-1');
      return { ok: true };
    } catch (e) {
      return { ok: false, ...errInfo(e) };
    }
  };
  after.stillFull = tryPut('still-full');
  if (sc.ballast) {
    fs.rmSync(sc.ballast);
    after.afterFree = tryPut('space-freed');
  }
  try {
    store.flush();
    store.close();
    after.close = { ok: true };
  } catch (e) {
    after.close = { ok: false, ...errInfo(e) };
    try {
      store.close();
    } catch {
      // reported above
    }
  }
  emit('AFTER', after);
}

main();
