// An error body's `example` is a request that works: it goes to the host and
// port the request reached (its Host header), not a fixed address.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../lib/server.js';
import { call, rawCall } from './helpers/http.js';
import { useScratch } from './helpers/store.js';

describe('error examples', () => {
  const scratch = useScratch();
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('name the port the server listens on, and keep the fixed address for a Host header that is not a plain host', async () => {
    server = await startServer({ dir: path.join(scratch.dir(), 'db'), storeOptions: { dimensions: 3 }, port: 0 });
    expect(server.port).not.toBe(8080);
    const r = await call(server.url, 'POST', '/api/v1/recall', { embedding: [1, 2] });
    expect(r.status).toBe(400);
    expect(r.body.error.example).toContain(`127.0.0.1:${server.port}/api/v1/recall`);
    const odd = await rawCall(server.url, 'POST', '/api/v1/recall', { Host: 'evil.example/../x', 'Content-Type': 'application/json' }, '{"embedding":[1]}');
    expect(odd.status).toBe(400);
    expect(odd.body.error.example).toContain('http://127.0.0.1:8080/api/v1/recall');
  });
});
