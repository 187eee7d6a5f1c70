// Shared pieces of the HTTP suites (http-spaces, http-filters): a JSON client
// over fetch, a raw client for paths and headers fetch would normalise or
// refuse, the three-part error assertion, and a listing of a directory tree
// (to check that a refused request created nothing).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'vitest';

export interface Reply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function call(
  url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {},
): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(url + path, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the assertions on the body will say so
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A request sent as is (the path is not normalised; headers are not checked by the client). */
export function rawCall(
  url: string, method: string, rawPath: string, headers: Record<string, string> = {}, body?: string,
): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, method, path: rawPath,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // left as text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The three-part error body with this status and code. */
export function expectError(
  r: { status: number; body: any; headers?: Headers }, status: number, code: string, messagePart?: RegExp, // eslint-disable-line @typescript-eslint/no-explicit-any
): void {
  const what = `${status} ${code}: got ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`;
  expect(r.status, what).toBe(status);
  if (r.headers !== undefined) expect(r.headers.get('content-type'), what).toMatch(/^application\/json/);
  expect(typeof r.body, what).toBe('object');
  expect(Object.keys(r.body), what).toEqual(['error']);
  expect(Object.keys(r.body.error).sort(), what).toEqual(['code', 'example', 'message', 'suggestion']);
  expect(r.body.error.code, what).toBe(code);
  for (const k of ['message', 'suggestion', 'example']) {
    expect(typeof r.body.error[k], `${what}: ${k}`).toBe('string');
    expect(r.body.error[k].length, `${what}: ${k} not empty`).toBeGreaterThan(0);
  }
  if (messagePart !== undefined) expect(r.body.error.message, what).toMatch(messagePart);
}

/** Every path under `dir` (relative, sorted), directories marked with a trailing '/'. */
export function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out.push(`${r}/`);
        walk(path.join(d, e.name), r);
      } else {
        out.push(r);
      }
    }
  };
  walk(dir, '');
  return out.sort();
}

/** The request headers that select a space (none for undefined: the space `default`). */
export function inSpace(space: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return space === undefined ? { ...extra } : { 'x-memory-space': space, ...extra };
}
