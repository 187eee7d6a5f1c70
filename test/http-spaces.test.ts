// Memory spaces of the HTTP server (lib/server/spaces.ts): one store per
// space under a root, chosen by the X-Memory-Space header. Two spaces never
// see each other's records through any route; a read of an unknown space is a
// 404 that creates nothing; invalid (traversal) names are 400 and touch no
// file; a refused write leaves no space behind; the LRU closes only idle
// stores and eviction, deletion and reopening lose nothing acknowledged; a
// deletion racing writes removes what was written before it and keeps what
// was acknowledged after it; a bounded concurrent load over 100 spaces with 8
// open stores loses no acknowledged write. Real servers on 127.0.0.1.
// Budget: about 45 s (an LRU miss opens a store: tens of ms).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { open } from '../lib/index.js';
import { buildServer, startServer } from '../lib/server.js';
import type { RunningServer, ServerOptions } from '../lib/server.js';
import { RootSpaces } from '../lib/server/spaces.js';
import { call, expectError, inSpace, rawCall, tree } from './helpers/http.js';
import { mulberry32 } from './helpers/random.js';
import { useScratch } from './helpers/store.js';

const DIMS = 4;
const scratch = useScratch('each');

let savedEnvToken: string | undefined;
beforeEach(() => {
  savedEnvToken = process.env.TIERSTORE_TOKEN;
  delete process.env.TIERSTORE_TOKEN;
});
afterEach(() => {
  if (savedEnvToken === undefined) delete process.env.TIERSTORE_TOKEN;
  else process.env.TIERSTORE_TOKEN = savedEnvToken;
});

const running: RunningServer[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.close();
});

async function serveRoot(options: Partial<ServerOptions> = {}, root = path.join(scratch.dir(), 'root')) {
  const server = await startServer({ root, dimensions: DIMS, port: 0, ...options });
  running.push(server);
  return { server, url: server.url, root };
}

function embeddingOf(i: number): number[] {
  return Array.from({ length: DIMS }, (_, d) => Math.fround(Math.sin(i * 7 + d * 3 + 1)));
}

function wireRecord(i: number, prefix: string) {
  return { id: `${prefix}-${i}`, content: `${prefix} content ${i}`, embedding: embeddingOf(i), metadata: { i } };
}

/** Every record of a space over HTTP (tier=all, paged by cursor): id -> content. */
async function contentsOf(url: string, space: string | undefined): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let p = '/api/v1/memories?tier=all&limit=1000';
  for (;;) {
    const r = await call(url, 'GET', p, undefined, inSpace(space));
    expect(r.status, JSON.stringify(r.body).slice(0, 200)).toBe(200);
    for (const m of r.body.memories) {
      expect(out.has(m.id), `${m.id} listed once`).toBe(false);
      out.set(m.id, m.content);
    }
    if (!r.body.pagination.has_more) return out;
    p = `/api/v1/memories?tier=all&limit=1000&cursor=${encodeURIComponent(r.body.pagination.next_cursor)}`;
  }
}

describe('isolation', () => {
  it('two spaces (and the default one) never see each other through any route', async () => {
    const { url, root } = await serveRoot();
    const spaces = [undefined, 'alpha', 'beta.2_x-Y'] as const;
    for (const [s, space] of spaces.entries()) {
      const prefix = `s${s}`;
      expect((await call(url, 'POST', '/api/v1/memories', wireRecord(0, prefix), inSpace(space))).status).toBe(201);
      const batch = { memories: [1, 2, 3].map((i) => wireRecord(i, prefix)) };
      expect((await call(url, 'POST', '/api/v1/memories', batch, inSpace(space))).status).toBe(201);
      // The same id in every space: each space keeps its own.
      expect((await call(url, 'POST', '/api/v1/memories', { ...wireRecord(9, 'shared'), content: `shared in ${prefix}` }, inSpace(space))).status)
        .toBe(201);
    }
    expect(fs.readdirSync(root).sort()).toEqual(['alpha', 'beta.2_x-Y', 'default']);

    for (const [s, space] of spaces.entries()) {
      const prefix = `s${s}`;
      const own = [0, 1, 2, 3].map((i) => `${prefix}-${i}`);
      const listed = await contentsOf(url, space);
      expect([...listed.keys()].sort()).toEqual([...own, 'shared-9'].sort());
      expect(listed.get('shared-9')).toBe(`shared in ${prefix}`);
      for (const tier of ['hot', 'warm', 'cold']) {
        const r = await call(url, 'GET', `/api/v1/memories?tier=${tier}`, undefined, inSpace(space));
        expect(r.body.tier_counts).toEqual({ hot: 5, warm: 0, cold: 0, total: 5 });
      }
      // get: own ids found, the others' not.
      for (const [o, other] of spaces.entries()) {
        const r = await call(url, 'GET', `/api/v1/memories/s${o}-1`, undefined, inSpace(space));
        if (o === s) expect(r.body.content).toBe(`${prefix} content 1`);
        else expectError(r, 404, 'NOT_FOUND');
        void other;
      }
      // recall: k larger than every space together returns only this space's records.
      const hits = await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(1), k: 100 }, inSpace(space));
      expect(hits.status).toBe(200);
      expect(hits.body.hits.map((h: { id: string }) => h.id).sort()).toEqual([...own, 'shared-9'].sort());
      const health = await call(url, 'GET', '/health', undefined, inSpace(space));
      expect(health.body).toMatchObject({ space: space ?? 'default', space_exists: true, tier_counts: { total: 5 }, mode: 'root' });
    }
    // delete: another space's id is a 404 and removes nothing there.
    expectError(await call(url, 'DELETE', '/api/v1/memories/s1-0', undefined, inSpace(undefined)), 404, 'NOT_FOUND');
    expect((await call(url, 'DELETE', '/api/v1/memories/shared-9', undefined, inSpace('alpha'))).status).toBe(200);
    expect((await contentsOf(url, 'alpha')).has('shared-9')).toBe(false);
    expect((await contentsOf(url, 'beta.2_x-Y')).get('shared-9')).toBe('shared in s2');
    expect((await contentsOf(url, undefined)).get('shared-9')).toBe('shared in s0');

    const listing = await call(url, 'GET', '/api/v1/spaces');
    expect(listing.status).toBe(200);
    expect(listing.body.count).toBe(3);
    expect(listing.body.spaces.map((s: { name: string; tier_counts: { total: number } }) => [s.name, s.tier_counts.total]))
      .toEqual([['alpha', 4], ['beta.2_x-Y', 5], ['default', 5]]);
  });
});

describe('unknown spaces and names', () => {
  it('a read, a delete or a recall of an unknown space is 404 SPACE_NOT_FOUND and creates nothing', async () => {
    const { url, root } = await serveRoot();
    const before = tree(root);
    const h = inSpace('ghost');
    expectError(await call(url, 'GET', '/api/v1/memories', undefined, h), 404, 'SPACE_NOT_FOUND', /"ghost"/);
    expectError(await call(url, 'GET', '/api/v1/memories/x', undefined, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'DELETE', '/api/v1/memories/x', undefined, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(1) }, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'DELETE', '/api/v1/spaces/ghost'), 404, 'SPACE_NOT_FOUND');
    // No header: the space 'default', which does not exist yet either.
    expectError(await call(url, 'GET', '/api/v1/memories'), 404, 'SPACE_NOT_FOUND', /"default"/);
    const health = await call(url, 'GET', '/health', undefined, h);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ space: 'ghost', space_exists: false, tier_counts: { total: 0 }, open_spaces: 0, max_open_spaces: 64 });
    expect((await call(url, 'GET', '/api/v1/spaces')).body).toEqual({ spaces: [], count: 0 });
    expect(tree(root)).toEqual(before);
  });

  it('invalid and traversal names are 400 on every route and touch no file inside or outside the root', async () => {
    const parent = scratch.dir();
    const root = path.join(parent, 'root');
    const { url } = await serveRoot({}, root);
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(1, 'k'), inSpace('keep'))).status).toBe(201);
    fs.writeFileSync(path.join(parent, 'outside.txt'), 'x');
    const before = tree(parent);

    const badHeaders = ['..', '.', '.hidden', '../escape', 'a/b', '/abs', 'a\\b', 'x'.repeat(65), '', ' ', 'a b', 'é', 'a,b', '~', '%2e%2e'];
    for (const name of badHeaders) {
      const h = { 'x-memory-space': name };
      const what = JSON.stringify(name);
      expectError(await call(url, 'POST', '/api/v1/memories', wireRecord(2, 'bad'), h), 400, 'INVALID_ARGUMENT', /X-Memory-Space/);
      expectError(await call(url, 'POST', '/api/v1/memories', { memories: [wireRecord(3, 'bad')] }, h), 400, 'INVALID_ARGUMENT');
      expectError(await call(url, 'GET', '/api/v1/memories', undefined, h), 400, 'INVALID_ARGUMENT');
      expectError(await call(url, 'GET', '/api/v1/memories/k-1', undefined, h), 400, 'INVALID_ARGUMENT');
      expectError(await call(url, 'DELETE', '/api/v1/memories/k-1', undefined, h), 400, 'INVALID_ARGUMENT');
      expectError(await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(1) }, h), 400, 'INVALID_ARGUMENT');
      expectError(await call(url, 'GET', '/health', undefined, h), 400, 'INVALID_ARGUMENT');
      expect(tree(parent), what).toEqual(before);
    }
    // 64 characters is the longest name.
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(4, 'l'), inSpace('x'.repeat(64)))).status).toBe(201);
    expect(fs.existsSync(path.join(root, 'x'.repeat(64), 'MANIFEST'))).toBe(true);
    // A header sent twice is not a name.
    expectError(await rawCall(url, 'GET', '/api/v1/memories', { 'x-memory-space': ['keep', 'keep'] as unknown as string }), 400, 'INVALID_ARGUMENT');
    // A NUL or a control character never reaches the server as a header (the HTTP parser refuses it).
    const withNul = await rawCallUnchecked(url, 'POST /api/v1/memories HTTP/1.1\r\nHost: x\r\nX-Memory-Space: a\u0000b\r\nContent-Length: 0\r\n\r\n');
    expect(withNul).toMatch(/^HTTP\/1\.1 400/);

    // Space names in the path of DELETE /api/v1/spaces/NAME: sent raw (no client normalisation).
    const badPaths = ['..', '.', '%2e%2e', '%2E%2E%2Fkeep', '..%2F..%2Foutside.txt', '%2Fetc', 'a%00b', '.hidden', 'x'.repeat(65), 'a%20b'];
    for (const p of badPaths) {
      const r = await rawCall(url, 'DELETE', `/api/v1/spaces/${p}`);
      expect([400, 404], `${p}: ${JSON.stringify(r.body)}`).toContain(r.status);
      if (r.status === 400) expectError(r, 400, 'INVALID_ARGUMENT');
      else expectError(r, 404, 'NOT_FOUND', /no route/); // '..' resolved by the router to another path: no route
    }
    expect(fs.existsSync(path.join(parent, 'outside.txt'))).toBe(true);
    expect((await contentsOf(url, 'keep')).size).toBe(1);
    expect(fs.readdirSync(root).sort()).toEqual(['keep', 'x'.repeat(64)].sort());
  });

  it('a refused write to a new space (schema, dimensions, metadata, content) leaves no space behind', async () => {
    const { url, root } = await serveRoot({ storeOptions: { maxContentBytes: 16 } });
    const h = inSpace('fresh');
    const good = wireRecord(1, 'f');
    expectError(await call(url, 'POST', '/api/v1/memories', { ...good, extra: 1 }, h), 400, 'INVALID_ARGUMENT');
    expectError(await call(url, 'POST', '/api/v1/memories', '{"id":', h), 400, 'INVALID_JSON');
    expectError(await call(url, 'POST', '/api/v1/memories', { ...good, embedding: [1, 2] }, h), 400, 'DIMENSION_MISMATCH');
    expectError(await call(url, 'POST', '/api/v1/memories', { memories: [good, { ...good, id: 'g', embedding: [1] }] }, h), 400, 'DIMENSION_MISMATCH');
    expectError(await call(url, 'POST', '/api/v1/memories', { ...good, content: 'x'.repeat(17) }, h), 413, 'CONTENT_TOO_LARGE');
    expectError(await call(url, 'POST', '/api/v1/memories', { ...good, embedding: [1e39, 0, 0, 0] }, h), 400, 'INVALID_ARGUMENT');
    expect(fs.readdirSync(root)).toEqual([]);
    expect((await call(url, 'GET', '/api/v1/spaces')).body.count).toBe(0);
    expectError(await call(url, 'GET', '/api/v1/memories', undefined, h), 404, 'SPACE_NOT_FOUND');
    // The same write, corrected, creates it.
    expect((await call(url, 'POST', '/api/v1/memories', good, h)).status).toBe(201);
    expect(fs.readdirSync(root)).toEqual(['fresh']);
  });

  it('a token guards writes and space deletion in every space; a refused write creates no space', async () => {
    const { url, root } = await serveRoot({ token: 's3cret' });
    const auth = { authorization: 'Bearer s3cret' };
    expectError(await call(url, 'POST', '/api/v1/memories', wireRecord(1, 'a'), inSpace('t1')), 401, 'UNAUTHORIZED');
    expect(fs.readdirSync(root)).toEqual([]);
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(1, 'a'), inSpace('t1', auth))).status).toBe(201);
    expectError(await call(url, 'DELETE', '/api/v1/spaces/t1'), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'DELETE', '/api/v1/spaces/t1', undefined, { authorization: 'Bearer nope' }), 401, 'UNAUTHORIZED');
    expect(fs.readdirSync(root)).toEqual(['t1']);
    expect((await call(url, 'DELETE', '/api/v1/spaces/t1', undefined, auth)).body).toEqual({ space: 't1', deleted: true });
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('the body limit and the error format hold in every space', async () => {
    const { url } = await serveRoot({ bodyLimit: 2048 });
    expectError(await call(url, 'POST', '/api/v1/memories', { ...wireRecord(1, 'b'), content: 'x'.repeat(4000) }, inSpace('big')), 413, 'BODY_TOO_LARGE');
    const bad = await call(url, 'GET', '/api/v1/memories?limit=0', undefined, inSpace('big'));
    expectError(bad, 400, 'INVALID_ARGUMENT', /limit/);
    expect(bad.body.error.example, 'the example is a request in the same space').toMatch(/^curl -H 'X-Memory-Space: big' /);
    const missing = await call(url, 'GET', '/api/v1/memories', undefined, inSpace('big'));
    expectError(missing, 404, 'SPACE_NOT_FOUND');
    // The example goes where the request went.
    expect(missing.body.error.example).toBe(`curl ${url}/api/v1/spaces`);
    expect((await call(url, 'GET', '/api/v1/spaces')).body.count).toBe(0);
  });
});

describe('a damaged space', () => {
  it('is reported in the listing, answers 500 CORRUPTION without hiding or harming the other spaces, and can be deleted', async () => {
    const { url, root } = await serveRoot();
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(1, 'ok'), inSpace('ok'))).status).toBe(201);
    fs.mkdirSync(path.join(root, 'broken'));
    fs.writeFileSync(path.join(root, 'broken', 'MANIFEST'), 'not a manifest');
    const listing = (await call(url, 'GET', '/api/v1/spaces')).body;
    expect(listing.count).toBe(2);
    expect(listing.spaces[0]).toMatchObject({ name: 'broken', open: false, tier_counts: null });
    expect(typeof listing.spaces[0].error.code).toBe('string');
    expect(listing.spaces[1]).toMatchObject({ name: 'ok', tier_counts: { total: 1 } });
    expect(listing.spaces[0].error.code).toBe('CORRUPTION');
    const health = await call(url, 'GET', '/health', undefined, inSpace('broken'));
    expect(health.status, 'the liveness probe does not fail for one space').toBe(200);
    expect(health.body).toMatchObject({ space: 'broken', space_exists: true, space_error: { code: 'CORRUPTION' } });
    expectError(await call(url, 'GET', '/api/v1/memories', undefined, inSpace('broken')), 500, 'CORRUPTION', /MANIFEST/);
    expectError(await call(url, 'POST', '/api/v1/memories', wireRecord(2, 'x'), inSpace('broken')), 500, 'CORRUPTION');
    expect((await contentsOf(url, 'ok')).size).toBe(1);
    expect(fs.readFileSync(path.join(root, 'broken', 'MANIFEST'), 'utf8')).toBe('not a manifest');
    // Deleting it is the way out.
    expect((await call(url, 'DELETE', '/api/v1/spaces/broken')).status).toBe(200);
    expect(fs.readdirSync(root)).toEqual(['ok']);
  });
});

/** Writes raw bytes to the server and returns what it answers (up to the end of the connection or 2 s of quiet). */
async function rawCallUnchecked(url: string, request: string): Promise<string> {
  const net = await import('node:net');
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname, () => socket.end(request));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (text += c));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(text);
    });
  });
}

describe('a --dir server is the space default', () => {
  it('another space is 404 on every route, default works with or without the header, and cannot be deleted', async () => {
    const dir = scratch.storePath();
    const server = await startServer({ dir, storeOptions: { dimensions: DIMS }, port: 0 });
    running.push(server);
    const url = server.url;
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(1, 'd'))).status).toBe(201);
    expect((await call(url, 'GET', '/api/v1/memories/d-1', undefined, inSpace('default'))).status).toBe(200);
    const before = tree(path.dirname(dir));
    const h = inSpace('other');
    expectError(await call(url, 'POST', '/api/v1/memories', wireRecord(2, 'd'), h), 404, 'SPACE_NOT_FOUND', /single store/);
    expectError(await call(url, 'GET', '/api/v1/memories', undefined, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'GET', '/api/v1/memories/d-1', undefined, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'DELETE', '/api/v1/memories/d-1', undefined, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(1) }, h), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'DELETE', '/api/v1/spaces/other'), 404, 'SPACE_NOT_FOUND');
    expectError(await call(url, 'DELETE', '/api/v1/spaces/default'), 400, 'INVALID_ARGUMENT', /single store/);
    expectError(await call(url, 'GET', '/api/v1/memories', undefined, inSpace('..')), 400, 'INVALID_ARGUMENT');
    expect(tree(path.dirname(dir))).toEqual(before);
    expect((await call(url, 'GET', '/api/v1/spaces')).body).toEqual({
      spaces: [{ name: 'default', open: true, tier_counts: { hot: 1, warm: 0, cold: 0, total: 1 } }], count: 1,
    });
    expect((await call(url, 'GET', '/health')).body).toMatchObject({ mode: 'dir', space: 'default', open_spaces: 1, max_open_spaces: 1 });
    expect((await call(url, 'GET', '/api/v1/memories/d-1')).body.content).toBe('d content 1');
  });

  it('startServer checks its options: exactly one of dir/store/root, root needs dimensions', async () => {
    const root = path.join(scratch.dir(), 'r');
    const bad: unknown[] = [
      { root },
      { root, dimensions: 0 },
      { root, dimensions: 4, dir: scratch.storePath() },
      { dir: scratch.storePath(), dimensions: 4 },
      { dir: scratch.storePath(), maxOpenSpaces: 4 },
      { root, dimensions: 4, maxOpenSpaces: 0 },
      { root: '', dimensions: 4 },
      {},
    ];
    for (const options of bad) {
      await expect(startServer({ port: 0, ...(options as ServerOptions) }), JSON.stringify(options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(fs.existsSync(root), 'a refused root is not created').toBe(false);
  });
});

describe('mounting', () => {
  it('buildServer({ root, dimensions }) serves spaces through inject() and finishes an interrupted removal; its records outlive close()', async () => {
    const root = path.join(scratch.dir(), 'root');
    // A removal cut off by a crash leaves a '.deleted-' directory: the next start finishes it.
    fs.mkdirSync(path.join(root, '.deleted-old-0123', 'sub'), { recursive: true });
    const app = buildServer({ root, dimensions: DIMS, maxOpenSpaces: 1 });
    expect(fs.readdirSync(root)).toEqual([]);
    const post = await app.inject({
      method: 'POST', url: '/api/v1/memories', headers: { 'x-memory-space': 'm1' }, payload: wireRecord(1, 'm'),
    });
    expect(post.statusCode).toBe(201);
    const health = await app.inject({ method: 'GET', url: '/health', headers: { 'x-memory-space': 'm1' } });
    expect(JSON.parse(health.body)).toMatchObject({ mode: 'root', open_spaces: 1, max_open_spaces: 1, tier_counts: { total: 1 } });
    await app.close();
    // After close() the space is a plain store with its record.
    const store = open(path.join(root, 'm1'), { readOnly: true });
    expect(store.get('m-1')?.content).toBe('m content 1');
    store.close();
    expect(() => buildServer({ root, dimensions: undefined as unknown as number })).toThrow(/dimensions/);
  });
});

describe('the LRU of open stores', () => {
  it('closes only idle stores: the bound is exceeded while all are busy and comes back on release', async () => {
    const root = path.join(scratch.dir(), 'root');
    const spaces = new RootSpaces({ root, dimensions: DIMS, maxOpen: 2, storeOptions: {} });
    try {
      const leases = [];
      for (const name of ['a', 'b', 'c']) {
        const lease = (await spaces.acquire(name, true))!;
        lease.store.put({ id: `${name}-1`, content: name, embedding: embeddingOf(1) });
        lease.commit();
        leases.push(lease);
      }
      expect(spaces.openCount(), 'three busy stores stay open past the bound of 2').toBe(3);
      for (const lease of leases) expect(lease.store.closed).toBe(false);
      leases[0]!.release();
      expect(spaces.openCount()).toBe(2);
      expect(leases[0]!.store.closed, 'the released one was closed to come back within the bound').toBe(true);
      leases[1]!.release();
      leases[2]!.release();
      expect(spaces.openCount()).toBe(2);
      // Opening a fourth evicts the least recently used idle one (b).
      const d = (await spaces.acquire('d', true))!;
      d.store.put({ id: 'd-1', content: 'd', embedding: embeddingOf(1) });
      d.commit();
      expect(leases[1]!.store.closed).toBe(true);
      expect(leases[2]!.store.closed).toBe(false);
      d.release();
      // Every record is still there after eviction and reopening.
      for (const name of ['a', 'b', 'c', 'd']) {
        const lease = (await spaces.acquire(name, false))!;
        expect(lease.store.get(`${name}-1`)?.content).toBe(name);
        lease.release();
        expect(spaces.openCount()).toBeLessThanOrEqual(2);
      }
      expect((await spaces.list()).map((s) => [s.name, s.counts?.total])).toEqual([['a', 1], ['b', 1], ['c', 1], ['d', 1]]);
      // A listing counts a closed space it has seen without opening it again (a damaged file shows only on opening).
      const closed = (await spaces.list()).find((s) => !s.open)!;
      fs.writeFileSync(path.join(root, closed.name, 'MANIFEST'), 'damaged while closed');
      expect((await spaces.list()).find((s) => s.name === closed.name)).toEqual({ name: closed.name, open: false, counts: closed.counts });
      await expect(spaces.acquire(closed.name, false)).rejects.toMatchObject({ code: 'CORRUPTION' });
    } finally {
      spaces.close();
    }
  });

  it('deleting a space waits for its requests in flight, new requests wait for the deletion, and a write recreates it empty', async () => {
    const root = path.join(scratch.dir(), 'root');
    const spaces = new RootSpaces({ root, dimensions: DIMS, maxOpen: 4, storeOptions: {} });
    try {
      const first = (await spaces.acquire('s', true))!;
      first.store.put({ id: 'old', content: 'old', embedding: embeddingOf(1) });
      first.commit();
      let removed = false;
      const removal = spaces.remove('s').then((r) => {
        removed = r;
        return r;
      });
      let readerDone = false;
      const reader = spaces.acquire('s', false).then((lease) => {
        readerDone = true;
        return lease;
      });
      await new Promise((resolve) => setImmediate(resolve));
      expect(removed, 'the deletion waits for the request holding the store').toBe(false);
      expect(readerDone, 'a new request waits for the deletion').toBe(false);
      expect(first.store.closed).toBe(false);
      first.store.put({ id: 'during', content: 'during', embedding: embeddingOf(2) });
      first.commit();
      first.release();
      expect(await removal).toBe(true);
      expect(await reader, 'after the deletion the space does not exist').toBeUndefined();
      expect(fs.readdirSync(root)).toEqual([]);
      expect(await spaces.remove('s')).toBe(false);
      const again = (await spaces.acquire('s', true))!;
      expect(again.store.counts().total, 'recreated empty').toBe(0);
      again.release();
      expect(fs.readdirSync(root), 'an empty space a write opened but never wrote to is removed again').toEqual([]);
    } finally {
      spaces.close();
    }
  });

  it('eviction, deletion and a restart over HTTP lose nothing acknowledged', async () => {
    const root = path.join(scratch.dir(), 'root');
    let { server, url } = await serveRoot({ maxOpenSpaces: 2 }, root);
    const model = new Map<string, Map<string, string>>();
    for (let round = 0; round < 3; round++) {
      for (let s = 0; s < 6; s++) {
        const space = `sp${s}`;
        const recs = [0, 1].map((i) => ({ ...wireRecord(round * 10 + i, space), content: `r${round} ${space} ${i}` }));
        expect((await call(url, 'POST', '/api/v1/memories', { memories: recs }, inSpace(space))).status).toBe(201);
        const m = model.get(space) ?? new Map<string, string>();
        for (const r of recs) m.set(r.id, r.content);
        model.set(space, m);
        expect(server.openSpaces()).toBeLessThanOrEqual(2);
        expect((await call(url, 'GET', '/health')).body.open_spaces).toBeLessThanOrEqual(2);
      }
    }
    expect((await call(url, 'DELETE', '/api/v1/spaces/sp3')).status).toBe(200);
    model.delete('sp3');
    expect((await call(url, 'DELETE', `/api/v1/memories/${encodeURIComponent('sp4-0')}`, undefined, inSpace('sp4'))).status).toBe(200);
    model.get('sp4')!.delete('sp4-0');
    const check = async () => {
      for (let s = 0; s < 6; s++) {
        const space = `sp${s}`;
        if (!model.has(space)) {
          expectError(await call(url, 'GET', '/api/v1/memories', undefined, inSpace(space)), 404, 'SPACE_NOT_FOUND');
          continue;
        }
        expect(await contentsOf(url, space), space).toEqual(model.get(space));
      }
      const listed = (await call(url, 'GET', '/api/v1/spaces')).body;
      expect(listed.spaces.map((x: { name: string; tier_counts: { total: number } }) => [x.name, x.tier_counts.total]))
        .toEqual([...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, m]) => [name, m.size]));
    };
    await check();
    await server.close();
    running.splice(running.indexOf(server), 1);
    expect(fs.readdirSync(root).sort()).toEqual([...model.keys()].sort());
    // Reopened as a --dir store, a space is a plain store.
    const direct = open(path.join(root, 'sp0'), { readOnly: true });
    expect(direct.counts().total).toBe(6);
    direct.close();
    ({ server, url } = await serveRoot({ maxOpenSpaces: 2 }, root));
    await check();
  });
});

describe('deleting a space under load', () => {
  it('writes racing deletions: only 201/200/404; writes answered before the last deletion was asked for are gone, those after its answer are there', async () => {
    const { url, root } = await serveRoot({ maxOpenSpaces: 2 });
    const h = inSpace('hot-space');
    const acked: { id: string; at: number }[] = [];
    const unexpected: string[] = [];
    let clock = 0; // order of responses as this test saw them
    let lastDeleteAt = -1;
    let lastDeleteSent = -1;
    const writer = async (w: number) => {
      for (let i = 0; i < 25; i++) {
        const rec = wireRecord(w * 1000 + i, 'race');
        const r = await call(url, 'POST', '/api/v1/memories', rec, h);
        if (r.status === 201) acked.push({ id: rec.id, at: clock++ });
        else unexpected.push(`post ${r.status}`);
        // Other spaces too, so the LRU evicts while deletions wait.
        const o = await call(url, 'POST', '/api/v1/memories', wireRecord(i, `o${w}`), inSpace(`other-${w}-${i % 3}`));
        if (o.status !== 201) unexpected.push(`other post ${o.status}`);
      }
    };
    const deleter = async () => {
      for (let i = 0; i < 10; i++) {
        const sent = clock++;
        const r = await call(url, 'DELETE', '/api/v1/spaces/hot-space');
        if (r.status === 200) {
          lastDeleteSent = sent;
          lastDeleteAt = clock++;
        }
        else if (r.status !== 404) unexpected.push(`delete ${r.status} ${JSON.stringify(r.body)}`);
        await call(url, 'GET', '/api/v1/memories?tier=all', undefined, h); // 200 or 404, both fine
      }
    };
    await Promise.all([writer(0), writer(1), writer(2), deleter()]);
    expect(unexpected).toEqual([]);
    expect(lastDeleteAt, 'some deletion found the space').toBeGreaterThanOrEqual(0);
    const stored = new Set((await contentsOf(url, 'hot-space').catch(() => new Map<string, string>())).keys());
    const ackedIds = new Set(acked.map((a) => a.id));
    for (const id of stored) expect(ackedIds.has(id), `${id} was acknowledged`).toBe(true);
    for (const a of acked) {
      // Between the request and the answer of the last deletion, a write may land on either side of it.
      if (a.at > lastDeleteAt) expect(stored.has(a.id), `${a.id} acknowledged after the last deletion`).toBe(true);
      if (a.at < lastDeleteSent) expect(stored.has(a.id), `${a.id} acknowledged before the last deletion`).toBe(false);
    }
    expect(fs.readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('concurrent load', () => {
  it('8 clients, 100 spaces, 8 open stores: mixed requests, only expected statuses, no acknowledged write lost', async () => {
    const root = path.join(scratch.dir(), 'root');
    const { server, url } = await serveRoot({ maxOpenSpaces: 8 }, root);
    const SPACES = 100;
    const CLIENTS = 8;
    const OPS = 50; // per client: count-based, no clock (most requests open a store: an LRU miss)
    // Spaces 0..89 are shared (disjoint ids per client); 90..99 belong to one client each, which may delete them.
    const live = new Map<string, Map<string, string>>();
    const liveOf = (space: string) => {
      let m = live.get(space);
      if (m === undefined) live.set(space, (m = new Map()));
      return m;
    };
    const unexpected: string[] = [];
    const counts: Record<string, number> = {};
    const note = (op: string, status: number, ok: number[], body: unknown) => {
      counts[op] = (counts[op] ?? 0) + 1;
      if (!ok.includes(status)) unexpected.push(`${op} -> ${status} ${JSON.stringify(body).slice(0, 200)}`);
    };
    const client = async (c: number) => {
      const rng = mulberry32(500 + c);
      const mine: [string, string][] = [];
      let n = 0;
      const pickSpace = () => {
        const r = rng();
        if (r < 0.2) {
          const owned = [90, 91, 92, 93, 94, 95, 96, 97, 98, 99].filter((s) => s % CLIENTS === c);
          return `space-${owned[Math.floor(rng() * owned.length)]}`;
        }
        return `space-${Math.floor(rng() * 90)}`;
      };
      for (let op = 0; op < OPS; op++) {
        const r = rng();
        const space = pickSpace();
        const h = inSpace(space);
        const known = live.has(space);
        if (r < 0.3) {
          const rec = { ...wireRecord(n, `c${c}`), content: `c${c} ${n++} in ${space}` };
          const res = await call(url, 'POST', '/api/v1/memories', rec, h);
          note('post', res.status, [201], res.body);
          if (res.status === 201) {
            liveOf(space).set(rec.id, rec.content);
            mine.push([space, rec.id]);
          }
        } else if (r < 0.4) {
          const recs = Array.from({ length: 1 + Math.floor(rng() * 6) }, () => ({ ...wireRecord(n, `c${c}`), content: `c${c} ${n++} in ${space}` }));
          const res = await call(url, 'POST', '/api/v1/memories', { memories: recs }, h);
          note('post-batch', res.status, [201], res.body);
          if (res.status === 201) {
            for (const rec of recs) {
              liveOf(space).set(rec.id, rec.content);
              mine.push([space, rec.id]);
            }
          }
        } else if (r < 0.55 && mine.length > 0) {
          const [sp, id] = mine[Math.floor(rng() * mine.length)]!;
          const res = await call(url, 'GET', `/api/v1/memories/${id}`, undefined, inSpace(sp));
          note('get', res.status, [200], res.body);
          if (res.status === 200 && res.body.content !== live.get(sp)?.get(id)) unexpected.push(`get ${sp}/${id}: wrong content`);
        } else if (r < 0.68) {
          const res = await call(url, 'GET', `/api/v1/memories?tier=all&limit=${1 + Math.floor(rng() * 50)}`, undefined, h);
          note('list', res.status, known ? [200] : [200, 404], res.body);
          if (res.status === 200) {
            for (const m of res.body.memories) {
              if (!m.content.endsWith(` in ${space}`)) unexpected.push(`list ${space}: a record of another space: ${m.content}`);
            }
          }
        } else if (r < 0.82) {
          const res = await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(Math.floor(rng() * 1e6)), k: 5 }, h);
          note('recall', res.status, known ? [200] : [200, 404], res.body);
          if (res.status === 200) {
            for (const hit of res.body.hits) {
              if (!hit.memory.content.endsWith(` in ${space}`)) unexpected.push(`recall ${space}: a record of another space`);
            }
          }
        } else if (r < 0.95 && mine.length > 0) {
          const [sp, id] = mine.splice(Math.floor(rng() * mine.length), 1)[0]!;
          const res = await call(url, 'DELETE', `/api/v1/memories/${id}`, undefined, inSpace(sp));
          note('delete', res.status, [200], res.body);
          if (res.status === 200) live.get(sp)!.delete(id);
        } else {
          const owned = [90, 91, 92, 93, 94, 95, 96, 97, 98, 99].filter((s) => s % CLIENTS === c);
          const sp = `space-${owned[Math.floor(rng() * owned.length)]}`;
          const res = await call(url, 'DELETE', `/api/v1/spaces/${sp}`);
          note('delete-space', res.status, live.has(sp) ? [200] : [404], res.body);
          if (res.status === 200) {
            live.delete(sp);
            for (let i = mine.length - 1; i >= 0; i--) if (mine[i]![0] === sp) mine.splice(i, 1);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));

    expect(unexpected, 'every response had its expected status').toEqual([]);
    for (const op of ['post', 'post-batch', 'get', 'list', 'recall', 'delete', 'delete-space']) {
      expect(counts[op] ?? 0, `${op} requests ran`).toBeGreaterThan(0);
    }
    expect(server.openSpaces(), 'back within the bound once idle').toBeLessThanOrEqual(8);
    const check = async (u: string) => {
      const listed = (await call(u, 'GET', '/api/v1/spaces')).body;
      expect(listed.spaces.map((s: { name: string }) => s.name).sort()).toEqual([...live.keys()].sort());
      for (const [space, m] of live) expect(await contentsOf(u, space), space).toEqual(m);
    };
    await check(url);
    expect(live.size, 'many spaces were used').toBeGreaterThan(50);
    // And after a restart (every store closed, then reopened on demand).
    await server.close();
    running.splice(running.indexOf(server), 1);
    const again = await serveRoot({ maxOpenSpaces: 8 }, root);
    await check(again.url);
  }, 240_000);
});
