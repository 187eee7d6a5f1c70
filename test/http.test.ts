// The HTTP server (lib/server.ts) against real servers on 127.0.0.1 with a
// real client (Node's fetch, and node:http where a request must be held open
// or streamed): every route and its wire shape, the listing defaults and
// paging, every error status with its three-part body, the body limit
// enforced while streaming, 503 while closing, bearer-token auth, the
// loopback rule, and a bounded concurrent load of mixed requests with no
// unexpected status and no lost write. Budget: about 15 s.
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { open, TierStoreError } from '../lib/index.js';
import type { MemoryStore, OpenOptions } from '../lib/index.js';
import { startServer } from '../lib/server.js';
import type { RunningServer, ServerOptions } from '../lib/server.js';
import { call, expectError } from './helpers/http.js';
import { mulberry32 } from './helpers/random.js';
import { useScratch } from './helpers/store.js';

const DIMS = 6;
const scratch = useScratch('each');

// Tests must not pick up a token from the environment of whoever runs them.
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

async function serve(storeOptions: OpenOptions = {}, serverOptions: Omit<ServerOptions, 'store' | 'dir'> = {}) {
  const store = scratch.open(scratch.storePath(), { dimensions: DIMS, ...storeOptions });
  const server = await startServer({ store, port: 0, ...serverOptions });
  running.push(server);
  return { store, server, url: server.url };
}

function embeddingOf(i: number): number[] {
  return Array.from({ length: DIMS }, (_, d) => Math.fround(Math.sin(i * 13 + d * 3 + 1)));
}

function wireRecord(i: number, prefix = 'm') {
  return {
    id: `${prefix}-${String(i).padStart(5, '0')}`,
    content: `content ${i} — ünïcødé`,
    embedding: embeddingOf(i),
    confidence: ((i * 37) % 101) / 100,
    created_at: 1_700_000_000_000 + i,
    metadata: { i, tag: `t${i % 3}` },
  };
}

/** `count` records spread over hot, warm and cold (written directly, the server shares the store). */
function fillTiers(store: MemoryStore, hot: number, warm: number, cold: number): void {
  const rec = (i: number) => {
    const w = wireRecord(i);
    return { id: w.id, content: w.content, embedding: w.embedding, createdAt: w.created_at, metadata: w.metadata };
  };
  let i = 0;
  const put = (n: number) => store.putMany(Array.from({ length: n }, () => rec(i++)));
  put(cold);
  for (let k = i - cold; k < i; k++) store.move(rec(k).id, 'cold');
  put(warm);
  for (let k = i - warm; k < i; k++) store.move(rec(k).id, 'warm');
  put(hot);
  expect(store.counts()).toMatchObject({ hot, warm, cold, total: hot + warm + cold });
}

describe('routes', () => {
  it('health, create (one and a batch), get, list, recall and delete: shapes and round trip', async () => {
    const { url } = await serve();

    const health = await call(url, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', dimensions: DIMS, read_only: false, auth: 'none' });
    expect(health.body.tier_counts).toEqual({ hot: 0, warm: 0, cold: 0, total: 0 });

    // An id that needs percent-encoding in the path.
    const odd = { ...wireRecord(1), id: 'a/b c?d#é%' };
    const created = await call(url, 'POST', '/api/v1/memories', odd);
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: odd.id, ids: [odd.id], count: 1 });
    expect(created.headers.get('location')).toBe(`/api/v1/memories/${encodeURIComponent(odd.id)}`);

    const batch = [wireRecord(2), wireRecord(3), wireRecord(4)];
    const createdMany = await call(url, 'POST', '/api/v1/memories', { memories: batch });
    expect(createdMany.status).toBe(201);
    expect(createdMany.body).toEqual({ ids: batch.map((b) => b.id), count: 3 });

    const got = await call(url, 'GET', `/api/v1/memories/${encodeURIComponent(odd.id)}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      id: odd.id,
      content: odd.content,
      metadata: odd.metadata,
      confidence: Math.fround(odd.confidence),
      activation: Math.fround(odd.confidence),
      created_at: odd.created_at,
      access_count: 1,
      tier: 'hot',
    });
    expect(typeof got.body.last_access_at).toBe('number');
    expect('embedding' in got.body, 'no embedding unless asked').toBe(false);

    const withEmbedding = await call(url, 'GET', `/api/v1/memories/${batch[1]!.id}?include_embeddings=true`);
    expect(withEmbedding.status).toBe(200);
    // Bit-exact through JSON: the float32 values come back as the same float32 values.
    expect(withEmbedding.body.embedding).toEqual(batch[1]!.embedding);
    // -0 too (JSON.stringify alone prints 0), in a single get, a listing and a recall hit.
    const negZero = { id: 'neg-zero', content: '', embedding: [-0, 1, -0, 2, 3, -0] };
    // Sent as text: JSON.stringify would send the -0 values as 0.
    expect((await call(url, 'POST', '/api/v1/memories', '{"id":"neg-zero","content":"","embedding":[-0,1,-0,2,3,-0]}')).status).toBe(201);
    const gotNegZero = await call(url, 'GET', '/api/v1/memories/neg-zero?include_embeddings=true');
    expect(gotNegZero.body.embedding.map((x: number) => Object.is(x, -0))).toEqual([true, false, true, false, false, true]);
    const listedNegZero = (await call(url, 'GET', '/api/v1/memories?include_embeddings=true&limit=1000')).body.memories
      .find((m: { id: string }) => m.id === 'neg-zero');
    expect(Object.is(listedNegZero.embedding[2], -0)).toBe(true);
    const hitNegZero = (await call(url, 'POST', '/api/v1/recall', { embedding: negZero.embedding, k: 1, include_embeddings: true })).body.hits[0];
    expect(hitNegZero.id).toBe('neg-zero');
    expect(Object.is(hitNegZero.memory.embedding[5], -0)).toBe(true);
    expect((await call(url, 'DELETE', '/api/v1/memories/neg-zero')).status).toBe(200);
    expect(Object.keys(withEmbedding.body).sort()).toEqual([
      'access_count', 'activation', 'confidence', 'content', 'created_at', 'embedding', 'id', 'last_access_at', 'metadata', 'tier',
    ]);

    const list = await call(url, 'GET', '/api/v1/memories');
    expect(list.status).toBe(200);
    expect(Object.keys(list.body).sort()).toEqual(['count', 'memories', 'pagination', 'tier_counts']);
    expect(list.body.count).toBe(4);
    expect(list.body.memories.map((m: { id: string }) => m.id).sort()).toEqual([odd.id, ...batch.map((b) => b.id)].sort());
    expect(list.body.pagination).toEqual({ offset: 0, limit: 100, returned: 4, has_more: false });
    expect(list.body.tier_counts).toEqual({ hot: 4, warm: 0, cold: 0, total: 4 });
    expect(list.body.memories.every((m: object) => !('embedding' in m))).toBe(true);
    const listEmb = await call(url, 'GET', '/api/v1/memories?include_embeddings=true&limit=2');
    expect(listEmb.body.memories).toHaveLength(2);
    for (const m of listEmb.body.memories) expect(m.embedding).toHaveLength(DIMS);

    const recall = await call(url, 'POST', '/api/v1/recall', { embedding: batch[2]!.embedding, k: 2, include_embeddings: true });
    expect(recall.status).toBe(200);
    expect(recall.body.count).toBe(2);
    expect(recall.body.hits).toHaveLength(2);
    const [best, second] = recall.body.hits;
    expect(best.id).toBe(batch[2]!.id);
    expect(best.tier).toBe('hot');
    expect(best.score).toBeCloseTo(1, 5);
    expect(second.score).toBeLessThanOrEqual(best.score);
    expect(best.memory).toMatchObject({ id: batch[2]!.id, content: batch[2]!.content, embedding: batch[2]!.embedding });
    const recallAll = await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(99), tier: 'all', min_confidence: 0 });
    expect(recallAll.status).toBe(200);
    expect(recallAll.body.count).toBe(4); // k defaults to 10; 4 records
    expect('embedding' in recallAll.body.hits[0].memory).toBe(false);

    const deleted = await call(url, 'DELETE', `/api/v1/memories/${encodeURIComponent(odd.id)}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ id: odd.id, deleted: true });
    expectError(await call(url, 'GET', `/api/v1/memories/${encodeURIComponent(odd.id)}`), 404, 'NOT_FOUND');
    expect((await call(url, 'GET', '/health')).body.tier_counts.total).toBe(3);
  });

  it('a POSTed memory upserts, keeps its defaults, and ids of 1024 UTF-8 bytes work in the path', async () => {
    const { url } = await serve();
    const minimal = { id: 'x'.repeat(1024), content: '', embedding: embeddingOf(5) };
    expect((await call(url, 'POST', '/api/v1/memories', minimal)).status).toBe(201);
    const got = await call(url, 'GET', `/api/v1/memories/${minimal.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ content: '', metadata: {}, confidence: 0.5, activation: 0.5 });
    // 341 three-byte characters: 1023 bytes, 3069 characters once percent-encoded.
    const wide = 'ह'.repeat(341);
    expect((await call(url, 'POST', '/api/v1/memories', { ...minimal, id: wide })).status).toBe(201);
    expect((await call(url, 'GET', `/api/v1/memories/${encodeURIComponent(wide)}`)).body.id).toBe(wide);
    // Upsert: the second version replaces the first.
    expect((await call(url, 'POST', '/api/v1/memories', { ...minimal, content: 'v2', confidence: 0.25 })).status).toBe(201);
    expect((await call(url, 'GET', `/api/v1/memories/${minimal.id}`)).body).toMatchObject({ content: 'v2', confidence: 0.25 });
    expect((await call(url, 'GET', '/health')).body.tier_counts.total).toBe(2);
  });

  it('startServer({ dir }) opens the store, and close() closes it with every acknowledged write kept', async () => {
    const dir = scratch.storePath();
    const server = await startServer({ dir, storeOptions: { dimensions: DIMS }, port: 0 });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect((await call(server.url, 'POST', '/api/v1/memories', wireRecord(7))).status).toBe(201);
    await server.close();
    await server.close(); // idempotent
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    // The server's handle is closed: this process can open the store again and finds the record.
    const reopened = scratch.open(dir);
    expect(reopened.get(wireRecord(7).id)?.content).toBe(wireRecord(7).content);
  });
});

describe('listing', () => {
  it('defaults to tier hot and limit 100, caps the limit at 1000, count = records returned', async () => {
    const { store, url } = await serve({ hotCapacity: 100_000 });
    fillTiers(store, 1100, 30, 20);
    const page = await call(url, 'GET', '/api/v1/memories');
    expect(page.status).toBe(200);
    expect(page.body.count).toBe(100);
    expect(page.body.memories).toHaveLength(100);
    expect(page.body.memories.every((m: { tier: string }) => m.tier === 'hot')).toBe(true);
    expect(page.body.pagination).toMatchObject({ offset: 0, limit: 100, returned: 100, has_more: true });
    expect(typeof page.body.pagination.next_cursor).toBe('string');
    expect(page.body.tier_counts).toEqual({ hot: 1100, warm: 30, cold: 20, total: 1150 });

    const big = await call(url, 'GET', '/api/v1/memories?limit=5000');
    expect(big.body.pagination).toMatchObject({ limit: 1000, returned: 1000 });
    expect(big.body.count).toBe(1000);
    // Any number of digits: a limit is capped, an offset past every record is an empty page.
    const huge = await call(url, 'GET', `/api/v1/memories?limit=${'9'.repeat(40)}&offset=${'1'.repeat(400)}`);
    expect(huge.status).toBe(200);
    expect(huge.body.pagination).toMatchObject({ limit: 1000, returned: 0, has_more: false });
    const hugeLimit = await call(url, 'GET', '/api/v1/memories?limit=1000000000000000');
    expect(hugeLimit.body.pagination).toMatchObject({ offset: 0, limit: 1000, returned: 1000 });
    const rest = await call(url, 'GET', '/api/v1/memories?limit=1000&offset=1000');
    expect(rest.body.count).toBe(100);
    expect(rest.body.pagination).toEqual({ offset: 1000, limit: 1000, returned: 100, has_more: false });

    const warm = await call(url, 'GET', '/api/v1/memories?tier=warm');
    expect(warm.body.count).toBe(30);
    expect(warm.body.memories.every((m: { tier: string }) => m.tier === 'warm')).toBe(true);
    const cold = await call(url, 'GET', '/api/v1/memories?tier=cold&limit=7');
    expect(cold.body.count).toBe(7);
    expect(cold.body.memories.every((m: { tier: string }) => m.tier === 'cold')).toBe(true);
  });

  it('paging tier=all with offset and with cursor returns every record once, hot then warm then cold', async () => {
    const { store, url } = await serve({ hotCapacity: 100_000 });
    fillTiers(store, 45, 38, 29);
    const expectedIds = new Set([...store.iterate()].map((m) => m.id));
    expect(expectedIds.size).toBe(112);
    const rank = { hot: 0, warm: 1, cold: 2 } as Record<string, number>;

    const byOffset: { id: string; tier: string }[] = [];
    for (let offset = 0; ; offset += 17) {
      const r = await call(url, 'GET', `/api/v1/memories?tier=all&limit=17&offset=${offset}`);
      expect(r.status).toBe(200);
      expect(r.body.count).toBe(r.body.memories.length);
      if (r.body.count === 0) break;
      byOffset.push(...r.body.memories);
    }
    const byCursor: { id: string; tier: string }[] = [];
    let path = '/api/v1/memories?tier=all&limit=17';
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(100);
      const r = await call(url, 'GET', path);
      expect(r.status).toBe(200);
      byCursor.push(...r.body.memories);
      if (!r.body.pagination.has_more) {
        expect('next_cursor' in r.body.pagination, 'no next_cursor on the last page').toBe(false);
        break;
      }
      path = `/api/v1/memories?tier=all&limit=17&cursor=${encodeURIComponent(r.body.pagination.next_cursor)}`;
    }
    for (const [name, seen] of [['offset', byOffset], ['cursor', byCursor]] as const) {
      const ids = seen.map((m) => m.id);
      expect(ids.length, `${name}: one entry per record`).toBe(112);
      expect(new Set(ids), `${name}: each record once`).toEqual(expectedIds);
      const tiers = seen.map((m) => rank[m.tier]!);
      expect(tiers, `${name}: hot, then warm, then cold`).toEqual([...tiers].sort((a, b) => a - b));
    }
  });
});

describe('errors', () => {
  it('400 for bad query parameters, with the parameter named', async () => {
    const { url } = await serve();
    expectError(await call(url, 'GET', '/api/v1/memories?tier=lukewarm'), 400, 'INVALID_ARGUMENT', /tier/);
    expectError(await call(url, 'GET', '/api/v1/memories?tier=hot&tier=warm'), 400, 'INVALID_ARGUMENT', /tier/);
    for (const limit of ['0', '-1', 'abc', '1.5', '']) {
      expectError(await call(url, 'GET', `/api/v1/memories?limit=${limit}`), 400, 'INVALID_ARGUMENT', /limit/);
    }
    for (const offset of ['-1', 'x', '2.5']) {
      expectError(await call(url, 'GET', `/api/v1/memories?offset=${offset}`), 400, 'INVALID_ARGUMENT', /offset/);
    }
    expectError(await call(url, 'GET', '/api/v1/memories?include_embeddings=yes'), 400, 'INVALID_ARGUMENT', /include_embeddings/);
    expectError(await call(url, 'GET', '/api/v1/memories?cursor=not-a-cursor'), 400, 'INVALID_ARGUMENT', /cursor/);
    expectError(await call(url, 'GET', '/api/v1/memories?cursor=abc&offset=0'), 400, 'INVALID_ARGUMENT', /cursor or offset/);
    expectError(await call(url, 'GET', '/api/v1/memories/x?include_embeddings=1'), 400, 'INVALID_ARGUMENT', /include_embeddings/);
    expectError(await call(url, 'GET', '/api/v1/memories/%E0%A4%A'), 400, 'INVALID_ARGUMENT', /percent-encoded/);
    expectError(await call(url, 'GET', `/api/v1/memories/${'y'.repeat(1025)}`), 400, 'INVALID_ARGUMENT', /1024/);
    expectError(await call(url, 'DELETE', `/api/v1/memories/${'y'.repeat(4000)}`), 400, 'INVALID_ARGUMENT', /too long/);
  });

  it('400 for invalid JSON and schema violations; nothing of a refused batch is written', async () => {
    const { store, url } = await serve();
    const post = (body: unknown) => call(url, 'POST', '/api/v1/memories', body);
    const good = wireRecord(1);
    expectError(await post('{"id": "a", "content":'), 400, 'INVALID_JSON');
    expectError(await post(''), 400, 'INVALID_JSON');
    expectError(await post('{"__proto__": {"x": 1}}'), 400, 'INVALID_JSON');
    expectError(await post([good]), 400, 'INVALID_ARGUMENT', /body must be of type object/);
    expectError(await post({ id: 'a', embedding: good.embedding }), 400, 'INVALID_ARGUMENT', /"content"/);
    expectError(await post({ ...good, content: 42 }), 400, 'INVALID_ARGUMENT', /body\.content must be of type string/);
    expectError(await post({ ...good, confidence: 1.5 }), 400, 'INVALID_ARGUMENT', /body\.confidence must be <= 1/);
    expectError(await post({ ...good, embedding: [1, 2, 'x', 4, 5, 6] }), 400, 'INVALID_ARGUMENT', /body\.embedding\[2\]/);
    expectError(await post({ ...good, created_at: 1.5 }), 400, 'INVALID_ARGUMENT', /created_at must be an integer/);
    expectError(await post({ ...good, createdAt: 5 }), 400, 'INVALID_ARGUMENT', /unknown field "createdAt"/);
    expectError(await post({ ...good, metadata: [] }), 400, 'INVALID_ARGUMENT', /metadata/);
    expectError(await post({ ...good, id: '' }), 400, 'INVALID_ARGUMENT', /id/);
    expectError(await post('{"id":"a","content":"\\ud800","embedding":[1,2,3,4,5,6]}'), 400, 'INVALID_ARGUMENT', /surrogate/);
    expectError(await post({ ...good, embedding: [1, 2, 3] }), 400, 'DIMENSION_MISMATCH', /body\.embedding has 3 values/);
    expectError(await post({ memories: [wireRecord(2), { ...wireRecord(3), embedding: [1] }] }), 400, 'DIMENSION_MISMATCH', /body\.memories\[1\]\.embedding/);
    expectError(await post({ memories: [wireRecord(2), { ...wireRecord(3), activation: -1 }] }), 400, 'INVALID_ARGUMENT', /memories\[1\]\.activation/);
    expectError(await post({ memories: [good], extra: true }), 400, 'INVALID_ARGUMENT', /unknown field "extra"/);
    expect(store.counts().total, 'no refused write changed the store').toBe(0);

    const recall = (body: unknown) => call(url, 'POST', '/api/v1/recall', body);
    expectError(await recall({ embedding: [1, 2] }), 400, 'DIMENSION_MISMATCH', /body\.embedding/);
    // An all-zero query (also after rounding to float32) has no direction: refused, naming the field.
    expectError(await recall({ embedding: [0, 0, 0, 0, 0, 0] }), 400, 'INVALID_ARGUMENT', /^body\.embedding is all zeros/);
    expectError(await recall({ embedding: [1e-46, 0, -1e-46, 0, 0, 0] }), 400, 'INVALID_ARGUMENT', /^body\.embedding is all zeros/);
    expectError(await recall({ embedding: good.embedding, k: 0 }), 400, 'INVALID_ARGUMENT', /body\.k/);
    expect((await recall({ embedding: good.embedding, k: 10_000 })).status).toBe(200);
    expectError(await recall({ embedding: good.embedding, k: 10_001 }), 400, 'INVALID_ARGUMENT', /body\.k/);
    expectError(await recall({ embedding: good.embedding, tier: 'tepid' }), 400, 'INVALID_ARGUMENT', /tier/);
    expectError(await recall({ embedding: good.embedding, include_embeddings: 'true' }), 400, 'INVALID_ARGUMENT', /boolean/);
    expectError(await recall({ k: 3 }), 400, 'INVALID_ARGUMENT', /"embedding"/);
  });

  it('404 for a missing id (GET and DELETE) and for an unknown route; 415 for a non-JSON body', async () => {
    const { url } = await serve();
    expectError(await call(url, 'GET', '/api/v1/memories/nope'), 404, 'NOT_FOUND', /"nope"/);
    expectError(await call(url, 'DELETE', '/api/v1/memories/nope'), 404, 'NOT_FOUND', /"nope"/);
    expectError(await call(url, 'GET', '/api/v2/everything'), 404, 'NOT_FOUND', /no route/);
    expectError(await call(url, 'PUT', '/api/v1/memories/nope', {}), 404, 'NOT_FOUND', /no route/);
    expectError(
      await call(url, 'POST', '/api/v1/memories', 'id=a', { 'content-type': 'application/x-www-form-urlencoded' }),
      415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await call(url, 'POST', '/api/v1/memories', 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('413 for content over maxContentBytes, and for a body over bodyLimit by Content-Length', async () => {
    const { store, url, server } = await serve({ maxContentBytes: 64 }, { bodyLimit: 4096 });
    expectError(await call(url, 'POST', '/api/v1/memories', { ...wireRecord(1), content: 'é'.repeat(33) }), 413, 'CONTENT_TOO_LARGE', /64/);
    expect((await call(url, 'POST', '/api/v1/memories', { ...wireRecord(1), content: 'é'.repeat(32) })).status).toBe(201);
    expectError(await call(url, 'POST', '/api/v1/memories', { ...wireRecord(2), content: 'x'.repeat(5000) }), 413, 'BODY_TOO_LARGE', /4096/);
    expect(store.counts().total).toBe(1);

    // A declared 10 GiB body is refused from its headers: the answer comes though nothing is sent.
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${url}/api/v1/memories`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(10 * 2 ** 30) },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('BODY_TOO_LARGE');
    expect(server.inFlight()).toBe(0);
  });

  it('413 for a streamed (chunked) body as soon as it passes bodyLimit, without buffering it whole', async () => {
    const bodyLimit = 1 << 20;
    const { url } = await serve({}, { bodyLimit });
    const chunk = Buffer.alloc(64 * 1024, 0x20); // JSON whitespace
    const maxBytes = 512 * 1024 * 1024;
    let sent = 0;
    const result = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
      let answered = false;
      const req = http.request(`${url}/api/v1/memories`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' }, // no length: chunked
      }, (res) => {
        answered = true;
        const sentWhenAnswered = sent;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode!, body, sent: sentWhenAnswered });
        });
      });
      req.on('error', (e) => {
        if (!answered) reject(e);
      });
      const pump = () => {
        while (!answered && sent < maxBytes) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        if (!answered) req.end();
      };
      req.write('{"id":"big","content":"');
      pump();
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body).error.code).toBe('BODY_TOO_LARGE');
    // Answered long before the 512 MiB body was through: the server stopped at the limit.
    expect(result.sent).toBeLessThan(64 * 1024 * 1024);
    // And it is still serving.
    expect((await call(url, 'GET', '/health')).status).toBe(200);
  });

  it('403 for a write to a read-only store', async () => {
    const path = scratch.storePath();
    open(path, { dimensions: DIMS }).close();
    const store = scratch.open(path, { readOnly: true });
    const server = await startServer({ store, port: 0 });
    running.push(server);
    expectError(await call(server.url, 'POST', '/api/v1/memories', wireRecord(1)), 403, 'READ_ONLY');
    expectError(await call(server.url, 'DELETE', '/api/v1/memories/x'), 403, 'READ_ONLY');
    expect((await call(server.url, 'GET', '/health')).body.read_only).toBe(true);
  });

  it('503 for requests that arrive while close() drains, which still finishes the request in flight', async () => {
    const dir = scratch.storePath();
    const server = await startServer({ dir, storeOptions: { dimensions: DIMS }, port: 0 });
    // A POST whose body is only half sent: in flight until we finish it.
    const record = wireRecord(9);
    const json = JSON.stringify(record);
    let resolveSlow!: (v: { status: number; body: string }) => void;
    const slowAnswer = new Promise<{ status: number; body: string }>((r) => (resolveSlow = r));
    const slow = http.request(`${server.url}/api/v1/memories`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolveSlow({ status: res.statusCode!, body }));
    });
    slow.write(json.slice(0, 10));
    for (let i = 0; server.inFlight() === 0; i++) {
      expect(i, 'the server sees the held request').toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 5));
    }

    const closing = server.close();
    const refused = await call(server.url, 'GET', '/health');
    expectError(refused, 503, 'SERVER_CLOSING');
    expect(refused.headers.get('connection')).toBe('close');
    expectError(await call(server.url, 'POST', '/api/v1/memories', wireRecord(10)), 503, 'SERVER_CLOSING');

    slow.end(json.slice(10));
    const answer = await slowAnswer;
    expect(answer.status, answer.body).toBe(201);
    await closing;
    const reopened = scratch.open(dir);
    expect(reopened.get(record.id)?.content, 'the write in flight was kept').toBe(record.content);
    expect(reopened.has(wireRecord(10).id), 'the refused write was not').toBe(false);
  });
});

describe('auth', () => {
  it('with a token, writes need it (401 without or with a wrong one); reads and /health do not', async () => {
    const token = 's3cret-token';
    const { store, url } = await serve({}, { token });
    const rec = wireRecord(1);
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

    const none = await call(url, 'POST', '/api/v1/memories', rec);
    expectError(none, 401, 'UNAUTHORIZED', /Authorization/);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectError(await call(url, 'POST', '/api/v1/memories', rec, bearer('wrong')), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'POST', '/api/v1/memories', rec, bearer(`${token}x`)), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'POST', '/api/v1/memories', rec, { authorization: `Basic ${token}` }), 401, 'UNAUTHORIZED');
    expect(store.counts().total, 'no unauthorised write').toBe(0);

    expect((await call(url, 'POST', '/api/v1/memories', rec, bearer(token))).status).toBe(201);
    expect((await call(url, 'POST', '/api/v1/memories', rec, { authorization: `bearer  ${token}` })).status).toBe(201);

    expect((await call(url, 'GET', '/health')).body.auth).toBe('writes');
    expect((await call(url, 'GET', '/api/v1/memories')).status).toBe(200);
    expect((await call(url, 'GET', `/api/v1/memories/${rec.id}`)).status).toBe(200);
    expect((await call(url, 'POST', '/api/v1/recall', { embedding: rec.embedding })).status).toBe(200);

    expectError(await call(url, 'DELETE', `/api/v1/memories/${rec.id}`), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'DELETE', `/api/v1/memories/${rec.id}`, undefined, bearer('nope')), 401, 'UNAUTHORIZED');
    expect(store.has(rec.id)).toBe(true);
    expect((await call(url, 'DELETE', `/api/v1/memories/${rec.id}`, undefined, bearer(token))).status).toBe(200);
    expect(store.has(rec.id)).toBe(false);
  });

  it('TIERSTORE_TOKEN is the default token; protectReads extends it to reads but not /health', async () => {
    process.env.TIERSTORE_TOKEN = 'from-env';
    const { url } = await serve({}, { protectReads: true });
    expectError(await call(url, 'POST', '/api/v1/memories', wireRecord(1)), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'GET', '/api/v1/memories'), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'GET', '/api/v1/memories/x'), 401, 'UNAUTHORIZED');
    expectError(await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(1) }), 401, 'UNAUTHORIZED');
    const health = await call(url, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body.auth).toBe('all');
    const auth = { authorization: 'Bearer from-env' };
    expect((await call(url, 'POST', '/api/v1/memories', wireRecord(1), auth)).status).toBe(201);
    expect((await call(url, 'GET', '/api/v1/memories', undefined, auth)).body.count).toBe(1);
  });

  it('refuses a non-loopback host without a token, and listens there with one', async () => {
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    for (const host of ['0.0.0.0', '::', '192.0.2.1', 'example.com']) {
      const err = await startServer({ store, host, port: 0 }).then(() => undefined, (e: unknown) => e);
      expect(err, host).toBeInstanceOf(TierStoreError);
      expect((err as TierStoreError).code).toBe('INVALID_ARGUMENT');
      expect((err as TierStoreError).message).toMatch(/token/);
    }
    // ::1 may be absent in a container without IPv6: whether a plain socket
    // can listen there decides what startServer must do.
    const ipv6Loopback = await new Promise<string | null>((resolve) => {
      const probe = net.createServer();
      probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      probe.listen(0, '::1', () => probe.close(() => resolve(null)));
    });
    const loopbacks = ipv6Loopback === null ? ['127.0.0.1', 'localhost', '::1'] : ['127.0.0.1', 'localhost'];
    if (ipv6Loopback !== null) {
      // Not the loopback rule refusing it: the same error a plain socket gets.
      const err = await startServer({ store, host: '::1', port: 0 }).then(() => undefined, (e: unknown) => e);
      expect(err, '::1 without IPv6').not.toBeInstanceOf(TierStoreError);
      expect((err as NodeJS.ErrnoException).code, '::1 without IPv6').toBe(ipv6Loopback);
    }
    for (const host of loopbacks) {
      const server = await startServer({ store, host, port: 0 });
      try {
        const health = await call(server.url, 'GET', '/health');
        expect(health.status, `${host}: /health`).toBe(200);
      } finally {
        await server.close();
      }
    }
    // An unusable token is refused, never taken as "no token".
    for (const token of ['', 'two words']) {
      const err = await startServer({ store, port: 0, token }).then(() => undefined, (e: unknown) => e);
      expect((err as TierStoreError).code, JSON.stringify(token)).toBe('INVALID_ARGUMENT');
    }
    process.env.TIERSTORE_TOKEN = '';
    const fromEmptyEnv = await startServer({ store, port: 0 }).then(() => undefined, (e: unknown) => e);
    expect((fromEmptyEnv as TierStoreError).code, 'empty TIERSTORE_TOKEN').toBe('INVALID_ARGUMENT');
    delete process.env.TIERSTORE_TOKEN;
    const open0 = await startServer({ store, host: '0.0.0.0', port: 0, token: 't' });
    running.push(open0);
    expect((await call(open0.url, 'GET', '/health')).body.auth).toBe('writes');
    expectError(await call(open0.url, 'POST', '/api/v1/memories', wireRecord(1)), 401, 'UNAUTHORIZED');
    expect(store.closed, 'a given store is not closed by the server').toBe(false);
  });
});

describe('concurrent load', () => {
  it('8 clients × 200 mixed requests: only expected statuses, no lost write, no lingering delete', async () => {
    // Small capacities: records migrate hot -> warm -> cold while the load runs.
    const { store, url } = await serve({ hotCapacity: 150, warmCapacity: 300 });
    const CLIENTS = 8;
    // A count, not a time window: the same work however busy the machine is.
    const REQUESTS_PER_CLIENT = 200;
    const live = new Map<string, string>(); // id -> content, acknowledged and not deleted
    const deleted = new Set<string>();
    const unexpected: string[] = [];
    const counts: Record<string, number> = {};
    const note = (op: string, status: number, ok: number[], body: unknown) => {
      counts[op] = (counts[op] ?? 0) + 1;
      if (!ok.includes(status)) unexpected.push(`${op} -> ${status} ${JSON.stringify(body).slice(0, 200)}`);
    };

    const client = async (c: number) => {
      const rng = mulberry32(1000 + c);
      const mine: string[] = [];
      let n = 0;
      const fresh = () => {
        const i = c * 1_000_000 + n++;
        return { ...wireRecord(i, `c${c}`), content: `client ${c} record ${i} ${'z'.repeat(i % 50)}` };
      };
      for (let step = 0; step < REQUESTS_PER_CLIENT; step++) {
        const r = rng();
        if (r < 0.3) {
          const rec = fresh();
          const res = await call(url, 'POST', '/api/v1/memories', rec);
          note('post', res.status, [201], res.body);
          if (res.status === 201) {
            live.set(rec.id, rec.content);
            mine.push(rec.id);
          }
        } else if (r < 0.4) {
          const recs = Array.from({ length: 1 + Math.floor(rng() * 8) }, fresh);
          const res = await call(url, 'POST', '/api/v1/memories', { memories: recs });
          note('post-batch', res.status, [201], res.body);
          if (res.status === 201) {
            for (const rec of recs) {
              live.set(rec.id, rec.content);
              mine.push(rec.id);
            }
          }
        } else if (r < 0.55 && mine.length > 0) {
          const id = mine[Math.floor(rng() * mine.length)]!;
          const res = await call(url, 'GET', `/api/v1/memories/${id}`);
          note('get', res.status, [200], res.body);
          if (res.status === 200 && res.body.content !== live.get(id)) unexpected.push(`get ${id}: wrong content`);
        } else if (r < 0.68) {
          const tier = ['hot', 'warm', 'cold', 'all'][Math.floor(rng() * 4)];
          const res = await call(url, 'GET', `/api/v1/memories?tier=${tier}&limit=${1 + Math.floor(rng() * 200)}`);
          note('list', res.status, [200], res.body);
          if (res.status === 200 && res.body.count !== res.body.memories.length) unexpected.push('list: count != returned');
        } else if (r < 0.85) {
          const res = await call(url, 'POST', '/api/v1/recall', { embedding: embeddingOf(Math.floor(rng() * 1e6)), k: 5, tier: 'all' });
          note('recall', res.status, [200], res.body);
          if (res.status === 200 && res.body.hits.length > 5) unexpected.push('recall: more than k hits');
        } else if (mine.length > 0) {
          const id = mine.splice(Math.floor(rng() * mine.length), 1)[0]!;
          const res = await call(url, 'DELETE', `/api/v1/memories/${id}`);
          note('delete', res.status, [200], res.body);
          if (res.status === 200) {
            live.delete(id);
            deleted.add(id);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));

    expect(unexpected, 'every response had its expected status').toEqual([]);
    for (const op of ['post', 'post-batch', 'get', 'list', 'recall', 'delete']) {
      expect(counts[op] ?? 0, `${op} requests ran`).toBeGreaterThan(0);
    }
    // Read everything back over HTTP: exactly the acknowledged, undeleted records, with their content.
    const seen = new Map<string, string>();
    let path = '/api/v1/memories?tier=all&limit=1000';
    for (;;) {
      const r = await call(url, 'GET', path);
      expect(r.status).toBe(200);
      for (const m of r.body.memories) {
        expect(seen.has(m.id), `${m.id} listed once`).toBe(false);
        seen.set(m.id, m.content);
      }
      if (!r.body.pagination.has_more) break;
      path = `/api/v1/memories?tier=all&limit=1000&cursor=${encodeURIComponent(r.body.pagination.next_cursor)}`;
    }
    expect(seen.size, 'stored = acknowledged - deleted').toBe(live.size);
    expect(seen).toEqual(live);
    for (const id of deleted) expect(seen.has(id), `deleted ${id} is gone`).toBe(false);
    expect(store.counts().total).toBe(live.size);
    const tiers = store.counts();
    expect(tiers.warm + tiers.cold, 'records migrated during the load').toBeGreaterThan(0);
  });
});
