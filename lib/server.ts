/**
 * HTTP server (issue 8): the memory API of the system tierstore replaces
 * (engram's /api/v1/memories, /api/v1/recall, /health) over one MemoryStore,
 * built on fastify.
 *
 * Guarantees:
 * - Wire format is JSON with snake_case names (created_at, tier_counts,
 *   include_embeddings, next_cursor); embeddings are arrays of numbers, sent
 *   only when asked for, and round-trip bit-exact through float32.
 * - Every error is `{ error: { code, message, suggestion, example } }` with
 *   400 bad input, 401 missing/wrong token, 403 read-only store, 404 unknown
 *   id or route, 413 content or body over its limit, 415 non-JSON body,
 *   503 while closing, 500 damage or I/O failure (lib/server/errors.ts).
 * - Bodies are checked by JSON schema (lib/server/schemas.ts) before the store
 *   sees them; a body over `bodyLimit` is refused by Content-Length before it
 *   is read, or as soon as the streamed bytes pass the limit (never buffered
 *   whole).
 * - With a token, write routes (POST /api/v1/memories, DELETE) need
 *   `Authorization: Bearer <token>` (compared in constant time); reads too
 *   with `protectReads`. Without a token, startServer listens on loopback only.
 * - close() stops taking new work at once (503 to any request that still
 *   arrives), waits for the requests in flight, stops listening, then closes
 *   the store if the server opened it.
 * - Recall runs on the store's native worker threads (recallAsync), so the
 *   event loop keeps serving; a listing is at most 1000 records.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';

import fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { TierStoreError } from './errors.js';
import {
  errorBody,
  HttpError,
  schemaMessage,
  STATUS_OF_CODE,
  wireMessage,
  type ErrorContext,
  type HttpErrorCode,
  type RouteKind,
} from './server/errors.js';
import {
  createBodySchema,
  getQuerySchema,
  idParamsSchema,
  listQuerySchema,
  recallBodySchema,
} from './server/schemas.js';
import { numbersOf, restoreNegativeZeros } from './negative-zero.js';
import { MemoryStore, open } from './store.js';
import type { Memory, MemoryInput, OpenOptions, TierCounts, TierSelector } from './types.js';
import { checkId, describe, MAX_ID_BYTES, MAX_LIST_LIMIT } from './validate.js';

export type { ErrorBody, HttpErrorCode } from './server/errors.js';

export interface ServerOptions {
  /** Open this store directory (closed again by close()). One of dir / store. */
  dir?: string;
  /** Serve this store (not closed by close()). One of dir / store. */
  store?: MemoryStore;
  /** Options for open(dir). */
  storeOptions?: OpenOptions;
  /** Default 8080; 0 = any free port. */
  port?: number;
  /** Default '127.0.0.1'; a non-loopback host needs a token. */
  host?: string;
  /**
   * Bearer token required on write routes (POST /api/v1/memories, DELETE);
   * default process.env.TIERSTORE_TOKEN. An empty one (option or variable) is refused.
   */
  token?: string;
  /** Require the token on read routes too (not on /health). Default false. */
  protectReads?: boolean;
  /**
   * Largest request body in bytes: integer 1..2^30. Default twice the
   * store's maxContentBytes plus 16 MiB, at most 256 MiB (144 MiB for the
   * default 64 MiB content limit).
   */
  bodyLimit?: number;
  /** How long close() waits for requests in flight before cutting connections, ms. Default 10 000. */
  closeTimeout?: number;
  /** fastify's request log (pino, JSON lines on stdout). Default false. */
  logger?: boolean;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8080 (loopback when listening on every interface). */
  url: string;
  port: number;
  server: FastifyInstance;
  /** Drains and stops the server; closes the store if it was opened from `dir`. Idempotent. */
  close(): Promise<void>;
  /** Requests being served now (headers received, response not finished). */
  inFlight(): number;
}

const DEFAULT_PORT = 8080;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const MAX_BODY_LIMIT = 2 ** 30;
const DEFAULT_BODY_LIMIT_CAP = 256 * 1024 * 1024;
const BODY_OVERHEAD = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Option checks

function optionsObject(options: unknown, where: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TierStoreError('INVALID_ARGUMENT', `${where}: options must be an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}

function integerOption(value: unknown, name: string, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new TierStoreError('INVALID_ARGUMENT', `server option ${name} must be an integer in [${min}, ${max}], got ${describe(value)}`);
  }
  return value;
}

/** The token in force: the option, else TIERSTORE_TOKEN; undefined when none. */
function resolveToken(token: unknown): string | undefined {
  // An empty TIERSTORE_TOKEN is refused like an empty --token: most likely a variable that expanded to nothing.
  if (token === undefined) token = process.env.TIERSTORE_TOKEN;
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || token.length === 0 || /\s/.test(token)) {
    throw new TierStoreError(
      'INVALID_ARGUMENT',
      typeof token === 'string'
        ? 'server option token (--token / TIERSTORE_TOKEN) must be non-empty and without whitespace: ' +
          'an unusable token is refused rather than serving without one'
        : `server option token must be a string, got ${describe(token)}`,
    );
  }
  return token;
}

/** Whether `host` is a loopback name or address (only this machine can connect). */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  const family = isIP(h);
  if (family === 4) return h.startsWith('127.');
  if (family === 6) {
    const lower = h.toLowerCase();
    return lower === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(lower) || /^::ffff:127\./.test(lower);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Wire shapes

interface WireMemory {
  id: string;
  content: string;
  metadata: Record<string, unknown>;
  confidence: number;
  activation: number;
  created_at: number;
  last_access_at: number;
  access_count: number;
  tier: string;
  /** Values -0 stand as a placeholder until wireJson prints the reply (numbersOf). */
  embedding?: Array<number | string>;
}

interface WireMemoryInput {
  id: string;
  content: string;
  embedding: number[];
  confidence?: number;
  activation?: number;
  created_at?: number;
  metadata?: Record<string, unknown>;
}

/** The reply serializer: JSON, with embedding values -0 printed as -0 (see numbersOf). */
function wireJson(payload: unknown): string {
  return restoreNegativeZeros(JSON.stringify(payload));
}

function toWire(m: Memory): WireMemory {
  const out: WireMemory = {
    id: m.id,
    content: m.content,
    metadata: m.metadata,
    confidence: m.confidence,
    activation: m.activation,
    created_at: m.createdAt,
    last_access_at: m.lastAccessAt,
    access_count: m.accessCount,
    tier: m.tier,
  };
  // A float32 printed by JSON.stringify parses back to the same float32 (-0 aside: numbersOf).
  if (m.embedding !== undefined) out.embedding = numbersOf(m.embedding);
  return out;
}

function fromWire(w: WireMemoryInput): MemoryInput {
  const input: MemoryInput = { id: w.id, content: w.content, embedding: w.embedding };
  if (w.confidence !== undefined) input.confidence = w.confidence;
  if (w.activation !== undefined) input.activation = w.activation;
  if (w.created_at !== undefined) input.createdAt = w.created_at;
  if (w.metadata !== undefined) input.metadata = w.metadata;
  return input;
}

function wireCounts(c: TierCounts): TierCounts {
  return { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
}

// ---------------------------------------------------------------------------
// Draining

/** Requests in flight and the closing flag of one server. */
class Drain {
  closing = false;
  #inFlight = 0;
  #waiters: (() => void)[] = [];

  get inFlight(): number {
    return this.#inFlight;
  }

  enter(): void {
    this.#inFlight++;
  }

  leave(): void {
    if (--this.#inFlight === 0) for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves true when nothing is in flight, false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#waiters.push(wake);
    });
  }
}

const drains = new WeakMap<FastifyInstance, Drain>();

// ---------------------------------------------------------------------------
// The application

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which route (picks the example of an error). */
    kind?: RouteKind;
    /** A write route: needs the token when one is set. */
    write?: boolean;
    /** Never needs a token (/health). */
    open?: boolean;
  }
}

function kindOf(request: FastifyRequest): RouteKind {
  return request.routeOptions?.config?.kind ?? 'other';
}

function defaultBodyLimit(maxContentBytes: number): number {
  return Math.min(2 * maxContentBytes + BODY_OVERHEAD, DEFAULT_BODY_LIMIT_CAP);
}

/** The status, code and message an error is answered with. */
function classify(
  error: FastifyError | Error, request: FastifyRequest, bodyLimit: number,
): { status: number; code: HttpErrorCode; message: string } {
  if (error instanceof HttpError) return { status: error.statusCode, code: error.code, message: error.message };
  if (error instanceof TierStoreError) {
    return { status: STATUS_OF_CODE[error.code], code: error.code, message: wireMessage(error.message) };
  }
  const fe = error as FastifyError & { validationContext?: string };
  if (fe.validation !== undefined) {
    return {
      status: 400,
      code: 'INVALID_ARGUMENT',
      message: schemaMessage(fe.validationContext ?? 'body', fe.validation as never, request.query),
    };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'BODY_TOO_LARGE', message: `the request body is larger than this server's limit of ${bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: `the body's Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')} is not accepted; bodies are JSON`,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'INVALID_JSON', message: 'the body is empty but Content-Type says JSON' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, code: 'INVALID_JSON', message: `the body is not valid JSON: ${fe.message}` };
  }
  if (error instanceof SyntaxError) {
    return { status: 400, code: 'INVALID_JSON', message: `the body is not valid JSON: ${error.message}` };
  }
  const status = fe.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) return { status, code: 'NOT_FOUND', message: fe.message };
    if (status === 413) return { status, code: 'BODY_TOO_LARGE', message: fe.message };
    if (status === 415) return { status, code: 'UNSUPPORTED_MEDIA_TYPE', message: fe.message };
    return { status: 400, code: 'INVALID_ARGUMENT', message: fe.message };
  }
  return { status: 500, code: 'INTERNAL_ERROR', message: `internal error: ${error.message}` };
}

/** Store-message prefixes as the wire names them, per route. */
type Renames = readonly (readonly [string, string])[];
const CREATE_RENAMES: Renames = [['memory.', 'body.'], ['memories[', 'body.memories['], ['putMany(): ', '']];
const RECALL_RENAMES: Renames = [['recallAsync(): query', 'body.embedding'], ['recallAsync(): options.', 'body.'], ['recallAsync(): ', '']];
const LIST_RENAMES: Renames = [['list(): options.', 'query parameter '], ['list(): ', '']];

/** Runs `fn`, renaming the fields in the message of a store error it raises. */
async function renamed<T>(renames: Renames, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof TierStoreError) throw new TierStoreError(error.code, wireMessage(error.message, renames));
    throw error;
  }
}

function parseBoolean(value: 'true' | 'false' | undefined): boolean {
  return value === 'true';
}

/** The id from the path, checked like the store checks it but named for HTTP. */
function pathId(request: FastifyRequest): string {
  const { id } = request.params as { id: string };
  checkId(id, 'the id in the path');
  return id;
}

/**
 * A fastify instance serving `store`, not listening yet (call listen(), or
 * inject() in tests). Closing it does not close the store.
 */
export function buildServer(
  store: MemoryStore,
  options?: Omit<ServerOptions, 'dir' | 'store' | 'port' | 'host'>,
): FastifyInstance {
  if (!(store instanceof MemoryStore)) {
    throw new TierStoreError('INVALID_ARGUMENT', `buildServer(): store must be a MemoryStore, got ${describe(store)}`);
  }
  const opts = optionsObject(options, 'buildServer()');
  const token = resolveToken(opts.token);
  const protectReads = opts.protectReads === true;
  const bodyLimit = integerOption(opts.bodyLimit, 'bodyLimit', 1, MAX_BODY_LIMIT, defaultBodyLimit(store.maxContentBytes));
  const ctx: ErrorContext = {
    dimensions: store.dimensions,
    maxContentBytes: store.maxContentBytes,
    bodyLimit,
    tokenRequired: token !== undefined,
  };
  const tokenDigest = token === undefined ? undefined : createHash('sha256').update(token).digest();

  const app = fastify({
    logger: opts.logger === true ? { level: 'info' } : false,
    bodyLimit,
    routerOptions: {
      // Ids are up to 1024 UTF-8 bytes, percent-encoded in the path at 3 characters a byte.
      maxParamLength: 3 * MAX_ID_BYTES,
    },
    // A path the router cannot decode, or an id longer than any valid one.
    frameworkErrors: (error, request, reply) => {
      const kind: RouteKind = request.method === 'DELETE' ? 'delete' : 'get';
      const message = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? `the id in the path is too long (ids are 1..${MAX_ID_BYTES} UTF-8 bytes, percent-encoded)`
        : `the path is not valid percent-encoded UTF-8: ${error.message}`;
      void send(reply, 400, 'INVALID_ARGUMENT', message, kind);
    },
    // Our own hook answers 503 in the three-part format.
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  // Bodies are JSON only: anything else is a 415, not a string the schema rejects.
  app.removeContentTypeParser('text/plain');
  const drain = new Drain();
  drains.set(app, drain);

  const send = (reply: FastifyReply, status: number, code: HttpErrorCode, message: string, kind: RouteKind) =>
    reply.code(status).type('application/json; charset=utf-8').send(errorBody(code, message, kind, ctx));

  const authorized = (header: string | undefined): boolean => {
    if (tokenDigest === undefined) return true;
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    if (match === null) return false;
    // Equal-length digests: the comparison time says nothing about the token.
    return timingSafeEqual(createHash('sha256').update(match[1]!).digest(), tokenDigest);
  };

  // Runs before the body is read: a closing server or a missing token never costs a body upload.
  app.addHook('onRequest', async (request, reply) => {
    const config = request.routeOptions?.config;
    const kind = kindOf(request);
    if (drain.closing) {
      reply.header('connection', 'close').header('retry-after', '1');
      return send(reply, 503, 'SERVER_CLOSING', 'the server is shutting down and takes no new requests', kind);
    }
    drain.enter();
    reply.raw.once('close', () => drain.leave());
    if (tokenDigest !== undefined && config?.open !== true && (config?.write === true || protectReads)) {
      if (!authorized(request.headers.authorization)) {
        reply.header('www-authenticate', 'Bearer realm="tierstore"').header('connection', 'close');
        const message = request.headers.authorization === undefined
          ? `${request.method} ${request.url.split('?')[0]} needs the header 'Authorization: Bearer <token>'`
          : 'the bearer token is wrong';
        return send(reply, 401, 'UNAUTHORIZED', message, kind);
      }
    }
    return undefined;
  });
  // fastify.close() (also from a user of buildServer) stops taking new requests too.
  app.addHook('preClose', async () => {
    drain.closing = true;
  });

  app.setReplySerializer((payload) => wireJson(payload));
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const { status, code, message } = classify(error, request, bodyLimit);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    if (status === 413 || status === 415) reply.header('connection', 'close');
    return send(reply, status, code, message, kindOf(request));
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, 'other'));

  app.get('/health', { config: { kind: 'health', open: true } }, async () => ({
    status: 'ok',
    dimensions: store.dimensions,
    read_only: store.readOnly,
    tier_counts: wireCounts(store.counts()),
    max_content_bytes: store.maxContentBytes,
    body_limit: bodyLimit,
    auth: token === undefined ? 'none' : protectReads ? 'all' : 'writes',
  }));

  app.get('/api/v1/memories', { schema: { querystring: listQuerySchema }, config: { kind: 'list' } }, async (request) => {
    const q = request.query as {
      tier?: TierSelector; offset?: string; limit?: string; cursor?: string; include_embeddings?: 'true' | 'false';
    };
    if (q.cursor !== undefined && q.offset !== undefined) {
      throw new HttpError(400, 'INVALID_ARGUMENT',
        'pass either cursor or offset, not both: a cursor already says where its page starts');
    }
    const page = await renamed(LIST_RENAMES, () => store.list({
      tier: q.tier ?? 'hot',
      // Any number of digits (DESIGN: any integer offset, a limit capped at
      // 1000): one too long for a double is past every record anyway.
      ...(q.offset === undefined ? {} : { offset: Math.min(Number(q.offset), Number.MAX_SAFE_INTEGER) }),
      ...(q.limit === undefined ? {} : { limit: Math.min(Number(q.limit), MAX_LIST_LIMIT) }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      includeEmbeddings: parseBoolean(q.include_embeddings),
    }));
    const { nextCursor, offset, limit, returned } = page.pagination;
    return {
      memories: page.memories.map(toWire),
      count: page.count,
      pagination: {
        offset,
        limit,
        returned,
        has_more: nextCursor !== undefined,
        ...(nextCursor === undefined ? {} : { next_cursor: nextCursor }),
      },
      tier_counts: wireCounts(page.tierCounts),
    };
  });

  app.post('/api/v1/memories', { schema: { body: createBodySchema }, config: { kind: 'create', write: true } }, async (request, reply) => {
    const body = request.body as WireMemoryInput | { memories: WireMemoryInput[] };
    if ('memories' in body) {
      const inputs = body.memories.map(fromWire);
      await renamed(CREATE_RENAMES, () => store.putMany(inputs));
      reply.code(201);
      return { ids: inputs.map((m) => m.id), count: inputs.length };
    }
    const input = fromWire(body);
    await renamed(CREATE_RENAMES, () => store.put(input));
    reply.code(201).header('location', `/api/v1/memories/${encodeURIComponent(input.id)}`);
    return { id: input.id, ids: [input.id], count: 1 };
  });

  app.get('/api/v1/memories/:id', {
    schema: { params: idParamsSchema, querystring: getQuerySchema }, config: { kind: 'get' },
  }, async (request) => {
    const id = pathId(request);
    const { include_embeddings } = request.query as { include_embeddings?: 'true' | 'false' };
    const memory = store.get(id, { includeEmbedding: parseBoolean(include_embeddings) });
    if (memory === undefined) throw new HttpError(404, 'NOT_FOUND', `no memory has the id ${JSON.stringify(id)}`);
    return toWire(memory);
  });

  app.delete('/api/v1/memories/:id', {
    schema: { params: idParamsSchema }, config: { kind: 'delete', write: true },
  }, async (request) => {
    const id = pathId(request);
    if (!store.delete(id)) throw new HttpError(404, 'NOT_FOUND', `no memory has the id ${JSON.stringify(id)}`);
    return { id, deleted: true };
  });

  app.post('/api/v1/recall', { schema: { body: recallBodySchema }, config: { kind: 'recall' } }, async (request) => {
    const body = request.body as {
      embedding: number[]; k?: number; tier?: TierSelector; min_confidence?: number; include_embeddings?: boolean;
    };
    const hits = await renamed(RECALL_RENAMES, () => store.recallAsync(body.embedding, {
      ...(body.k === undefined ? {} : { k: body.k }),
      ...(body.tier === undefined ? {} : { tier: body.tier }),
      ...(body.min_confidence === undefined ? {} : { minConfidence: body.min_confidence }),
      includeEmbeddings: body.include_embeddings === true,
    }));
    return {
      hits: hits.map((h) => ({ id: h.id, score: h.score, tier: h.tier, memory: toWire(h.memory) })),
      count: hits.length,
    };
  });

  return app;
}

/**
 * Opens `dir` (or takes `store`), builds the server and listens. Rejects with
 * INVALID_ARGUMENT for a non-loopback host without a token.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const opts = optionsObject(options, 'startServer()') as ServerOptions;
  if ((opts.dir === undefined) === (opts.store === undefined)) {
    throw new TierStoreError('INVALID_ARGUMENT', 'startServer(): give exactly one of options.dir (a store directory) and options.store (an open MemoryStore)');
  }
  const port = integerOption(opts.port, 'port', 0, 65535, DEFAULT_PORT);
  const host = opts.host ?? DEFAULT_HOST;
  if (typeof host !== 'string' || host.length === 0) {
    throw new TierStoreError('INVALID_ARGUMENT', `server option host must be a host name or address, got ${describe(host)}`);
  }
  const closeTimeout = integerOption(opts.closeTimeout, 'closeTimeout', 0, 2 ** 31 - 1, DEFAULT_CLOSE_TIMEOUT_MS);
  const token = resolveToken(opts.token);
  if (token === undefined && !isLoopbackHost(host)) {
    throw new TierStoreError(
      'INVALID_ARGUMENT',
      `refusing to listen on ${host} without a token: anyone who can reach it could write and delete. ` +
        'Set a token (--token or TIERSTORE_TOKEN), or listen on 127.0.0.1 (the default).',
    );
  }

  const ownStore = opts.store === undefined;
  const store = opts.store ?? open(opts.dir as string, opts.storeOptions);
  let app: FastifyInstance;
  try {
    app = buildServer(store, {
      token,
      ...(opts.protectReads === undefined ? {} : { protectReads: opts.protectReads }),
      ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
    await app.listen({ port, host });
  } catch (error) {
    if (ownStore) store.close();
    throw error;
  }

  const address = app.server.address() as AddressInfo;
  const shown = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const url = `http://${address.family === 'IPv6' ? `[${shown}]` : shown}:${address.port}`;
  const drain = drains.get(app)!;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      drain.closing = true;
      if (!(await drain.idle(closeTimeout))) {
        app.log.warn(`closing with ${drain.inFlight} requests still in flight after ${closeTimeout} ms`);
        app.server.closeAllConnections();
      }
      try {
        await app.close();
      } finally {
        // The store waits for a recall still running on its worker threads.
        if (ownStore) store.close();
      }
    })();
    return closed;
  };
  return { url, port: address.port, server: app, close, inFlight: () => drain.inFlight };
}
