/**
 * HTTP server: the memory API of the system tierstore replaces (engram's
 * /api/v1/memories, /api/v1/recall, /health) over one MemoryStore, or over
 * one store per memory space under a root directory, built on fastify.
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
 * - Memory spaces (lib/server/spaces.ts): every route works on the space the
 *   `X-Memory-Space` header names (default `default`). With `root`, each
 *   space is a store in root/NAME, created by its first successful write;
 *   any other request to an unknown space is a 404 (SPACE_NOT_FOUND). With
 *   `dir` or `store` the one store is the space `default`. GET
 *   /api/v1/spaces lists the spaces, DELETE /api/v1/spaces/NAME removes one.
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
import { filterFromBody, filterFromQuery, type FilterQuery, type WireFilter } from './server/filters.js';
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
import {
  checkSpaceName,
  DEFAULT_MAX_OPEN_SPACES,
  DEFAULT_SPACE,
  isSpaceName,
  RootSpaces,
  SingleSpace,
  SPACE_HEADER,
  type Spaces,
} from './server/spaces.js';
import { checkId, describe, MAX_DIMENSIONS, MAX_ID_BYTES, MAX_LIST_LIMIT } from './validate.js';

export type { ErrorBody, HttpErrorCode } from './server/errors.js';

/**
 * Options of startServer(). Give exactly one of `dir`, `store` and `root`:
 * - `dir`: open this store directory and serve it as the space `default`
 *   (closed again by close()); a request naming another space is a 404.
 * - `store`: serve this open store as the space `default` (not closed by close()).
 * - `root` (with `dimensions`): serve one store per memory space, in
 *   root/NAME, chosen by the `X-Memory-Space` request header (no header: the
 *   space `default`). A successful write to a new space creates it (with
 *   `dimensions`); any other request to an unknown space is a 404. At most
 *   `maxOpenSpaces` stores stay open (least recently used closed first, and
 *   only when no request is using it); close() closes them all.
 */
export interface ServerOptions {
  /** Open this store directory (closed again by close()). */
  dir?: string;
  /** Serve this store (not closed by close()). */
  store?: MemoryStore;
  /** Serve one store per memory space under this directory (created if missing). */
  root?: string;
  /** With `root`: the dimensions of a space created by a write, 1..65536. Required there. */
  dimensions?: number;
  /**
   * With `root`: how many stores are kept open, 1..65536, default 64. Only a
   * store no request is using is closed to make room, so more may be open
   * while every open store is busy.
   */
  maxOpenSpaces?: number;
  /** Options for open(dir), or for opening every space with `root` (their dimensions aside). */
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

/** A server startServer() started: where it listens, and how to stop it. */
export interface RunningServer {
  /** e.g. http://127.0.0.1:8080 (loopback when listening on every interface). */
  url: string;
  /** The port it listens on (the one chosen when `port` was 0). */
  port: number;
  /** The fastify instance, for a host that adds routes or hooks of its own. */
  server: FastifyInstance;
  /** Drains and stops the server; closes the store(s) it opened (`dir`, `root`). Idempotent. */
  close(): Promise<void>;
  /** Stores open now (1 for `dir` and `store`). */
  openSpaces(): number;
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
    const kind = kindOf(request);
    const shape = kind === 'create' || kind === 'recall' || kind === 'list' ? kind : undefined;
    return { status: STATUS_OF_CODE[error.code], code: error.code, message: wireMessage(error, shape) };
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

function parseBoolean(value: 'true' | 'false' | undefined): boolean {
  return value === 'true';
}

/** The id from the path, checked like the store checks it but named for HTTP. */
function pathId(request: FastifyRequest): string {
  const { id } = request.params as { id: string };
  checkId(id, 'the id in the path');
  return id;
}

/** The space a request names: its X-Memory-Space header, else `default`. */
function spaceOf(request: FastifyRequest): string {
  const header = request.headers[SPACE_HEADER];
  if (header === undefined) return DEFAULT_SPACE;
  // A repeated header arrives as a list (or joined with ', '): never a valid name.
  return checkSpaceName(Array.isArray(header) ? header.join(', ') : header, 'the X-Memory-Space header');
}

/** Spaces served from a root directory (buildServer's second form; the same as ServerOptions' root). */
export interface SpacesSource {
  /** The directory of the spaces: space NAME is the store in root/NAME. Created if missing. */
  root: string;
  /** Dimensions of a space created by a write, 1..65536. */
  dimensions: number;
  /** Stores kept open, 1..65536, default 64 (only idle ones are closed to make room). */
  maxOpenSpaces?: number;
  /** Options for opening every space (their dimensions aside). */
  storeOptions?: OpenOptions;
}

function spacesOf(source: MemoryStore | SpacesSource, where: string, log: (name: string, error: unknown) => void): Spaces {
  if (source instanceof MemoryStore) return new SingleSpace(source, false);
  const s = optionsObject(source, where);
  if (typeof s.root !== 'string' || s.root.length === 0) {
    throw new TierStoreError('INVALID_ARGUMENT', `${where}: give a store (a MemoryStore) or { root, dimensions }, got ${describe(source)}`);
  }
  if (s.dimensions === undefined) {
    throw new TierStoreError('INVALID_ARGUMENT', `${where}: root needs dimensions (of the spaces a write creates), 1..${MAX_DIMENSIONS}`);
  }
  return new RootSpaces({
    root: s.root,
    dimensions: integerOption(s.dimensions, 'dimensions', 1, MAX_DIMENSIONS, 0),
    maxOpen: integerOption(s.maxOpenSpaces, 'maxOpenSpaces', 1, 65536, DEFAULT_MAX_OPEN_SPACES),
    storeOptions: (optionsObject(s.storeOptions, `${where}: storeOptions`) as OpenOptions),
    onCloseError: log,
  });
}

/**
 * A fastify instance serving `store` (the space `default`), or one store per
 * memory space under `source.root` (see ServerOptions), not listening yet
 * (call listen(), or inject() in tests). Closing it does not close a store
 * given to it; it closes the spaces' stores it opened.
 */
export function buildServer(
  source: MemoryStore | SpacesSource,
  options?: Omit<ServerOptions, 'dir' | 'store' | 'root' | 'dimensions' | 'maxOpenSpaces' | 'storeOptions' | 'port' | 'host'>,
): FastifyInstance {
  if (!(source instanceof MemoryStore) && (typeof source !== 'object' || source === null || !('root' in source))) {
    throw new TierStoreError('INVALID_ARGUMENT', `buildServer(): store must be a MemoryStore, got ${describe(source)}`);
  }
  const opts = optionsObject(options, 'buildServer()');
  // Checked before a root directory is created.
  resolveToken(opts.token);
  integerOption(opts.bodyLimit, 'bodyLimit', 1, MAX_BODY_LIMIT, 0);
  let app: FastifyInstance | undefined;
  const spaces = spacesOf(source, 'buildServer()', (name, error) =>
    app?.log.error({ err: error }, `closing the store of space ${name} failed`));
  app = buildApp(spaces, opts);
  return app;
}

function buildApp(spaces: Spaces, opts: Record<string, unknown>): FastifyInstance {
  const token = resolveToken(opts.token);
  const protectReads = opts.protectReads === true;
  const bodyLimit = integerOption(opts.bodyLimit, 'bodyLimit', 1, MAX_BODY_LIMIT, defaultBodyLimit(spaces.maxContentBytes));
  const baseCtx: ErrorContext = {
    dimensions: spaces.dimensions,
    maxContentBytes: spaces.maxContentBytes,
    bodyLimit,
    tokenRequired: token !== undefined,
  };
  const tokenDigest = token === undefined ? undefined : createHash('sha256').update(token).digest();
  /** The store a request is working on: its errors speak of that store's dimensions and limits. */
  const storeOfRequest = new WeakMap<FastifyRequest, MemoryStore>();
  const ctxOf = (request: FastifyRequest | undefined): ErrorContext => {
    const store = request === undefined ? undefined : storeOfRequest.get(request);
    const header = request?.headers[SPACE_HEADER];
    const space = typeof header === 'string' && isSpaceName(header) ? header : undefined;
    const hostHeader = request?.headers.host;
    const host = typeof hostHeader === 'string' && /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/.test(hostHeader)
      ? hostHeader : undefined;
    return {
      ...baseCtx,
      ...(store === undefined ? {} : { dimensions: store.dimensions, maxContentBytes: store.maxContentBytes }),
      ...(space === undefined ? {} : { space }),
      ...(host === undefined ? {} : { host }),
    };
  };

  const app = fastify({
    logger: opts.logger === true ? { level: 'info' } : false,
    bodyLimit,
    routerOptions: {
      // Ids are up to 1024 UTF-8 bytes, percent-encoded in the path at 3 characters a byte.
      maxParamLength: 3 * MAX_ID_BYTES,
    },
    // A path the router cannot decode, or an id longer than any valid one.
    frameworkErrors: (error, request, reply) => {
      const space = request.url.startsWith('/api/v1/spaces/');
      const kind: RouteKind = space ? 'space-delete' : request.method === 'DELETE' ? 'delete' : 'get';
      const message = error.code !== 'FST_ERR_MAX_PARAM_LENGTH'
        ? `the path is not valid percent-encoded UTF-8: ${error.message}`
        : space
          ? 'the space name in the path is too long (names are 1 to 64 characters)'
          : `the id in the path is too long (ids are 1..${MAX_ID_BYTES} UTF-8 bytes, percent-encoded)`;
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

  const send = (reply: FastifyReply, status: number, code: HttpErrorCode, message: string, kind: RouteKind, request?: FastifyRequest) =>
    reply.code(status).type('application/json; charset=utf-8').send(errorBody(code, message, kind, ctxOf(request)));

  const authorized = (header: string | undefined): boolean => {
    if (tokenDigest === undefined) return true;
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    if (match === null) return false;
    // Equal-length digests: the comparison time says nothing about the token.
    return timingSafeEqual(createHash('sha256').update(match[1]!).digest(), tokenDigest);
  };

  /**
   * Runs `fn` on the store of the request's space, held open (never evicted)
   * until `fn` settles. `create`: a write that may create the space; it stays
   * only if `fn` succeeds. An unknown space is a 404 (nothing is created).
   */
  const inSpace = async <T>(request: FastifyRequest, create: boolean, fn: (store: MemoryStore) => T | Promise<T>): Promise<T> => {
    const name = spaceOf(request);
    const lease = await spaces.acquire(name, create);
    if (lease === undefined) {
      throw new HttpError(404, 'SPACE_NOT_FOUND', spaces.mode === 'dir'
        ? `no memory space ${JSON.stringify(name)}: this server serves a single store, the space "default"`
        : `no memory space ${JSON.stringify(name)}${create ? '' : ' (a write to it creates it)'}`);
    }
    storeOfRequest.set(request, lease.store);
    try {
      const result = await fn(lease.store);
      if (create) lease.commit();
      return result;
    } finally {
      lease.release();
    }
  };

  // Runs before the body is read: a closing server or a missing token never costs a body upload.
  app.addHook('onRequest', async (request, reply) => {
    const config = request.routeOptions?.config;
    const kind = kindOf(request);
    if (drain.closing) {
      reply.header('connection', 'close').header('retry-after', '1');
      return send(reply, 503, 'SERVER_CLOSING', 'the server is shutting down and takes no new requests', kind, request);
    }
    drain.enter();
    reply.raw.once('close', () => drain.leave());
    if (tokenDigest !== undefined && config?.open !== true && (config?.write === true || protectReads)) {
      if (!authorized(request.headers.authorization)) {
        reply.header('www-authenticate', 'Bearer realm="tierstore"').header('connection', 'close');
        const message = request.headers.authorization === undefined
          ? `${request.method} ${request.url.split('?')[0]} needs the header 'Authorization: Bearer <token>'`
          : 'the bearer token is wrong';
        return send(reply, 401, 'UNAUTHORIZED', message, kind, request);
      }
    }
    return undefined;
  });
  // fastify.close() (also from a user of buildServer) stops taking new requests too.
  app.addHook('preClose', async () => {
    drain.closing = true;
  });
  // Then closes the stores it opened (the spaces'; a --dir store opened by startServer).
  app.addHook('onClose', async () => {
    spaces.close();
  });

  app.setReplySerializer((payload) => wireJson(payload));
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const { status, code, message } = classify(error, request, bodyLimit);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    if (status === 413 || status === 415) reply.header('connection', 'close');
    return send(reply, status, code, message, kindOf(request), request);
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, 'other'));

  app.get('/health', { config: { kind: 'health', open: true } }, async (request) => {
    // The liveness probe never fails for a space: an unknown one is reported empty (and not created).
    // A space that cannot be opened (damaged, locked elsewhere) is reported in space_error.
    const name = spaceOf(request);
    let counts: TierCounts = { hot: 0, warm: 0, cold: 0, total: 0 };
    let dimensions = spaces.dimensions;
    let exists = false;
    let spaceError: { code: string; message: string } | undefined;
    try {
      const lease = await spaces.acquire(name, false);
      exists = lease !== undefined;
      try {
        if (lease !== undefined) {
          counts = wireCounts(lease.store.counts());
          dimensions = lease.store.dimensions;
        }
      } finally {
        lease?.release();
      }
    } catch (error) {
      if (!(error instanceof TierStoreError)) throw error;
      exists = true;
      spaceError = { code: error.code, message: error.message };
    }
    return {
      status: 'ok',
      dimensions,
      read_only: spaces.readOnly,
      tier_counts: counts,
      max_content_bytes: spaces.maxContentBytes,
      body_limit: bodyLimit,
      auth: token === undefined ? 'none' : protectReads ? 'all' : 'writes',
      mode: spaces.mode,
      space: name,
      space_exists: exists,
      ...(spaceError === undefined ? {} : { space_error: spaceError }),
      open_spaces: spaces.openCount(),
      max_open_spaces: spaces.maxOpen,
    };
  });

  app.get('/api/v1/spaces', { config: { kind: 'spaces' } }, async () => {
    const list = await spaces.list();
    return {
      spaces: list.map((s) => ({
        name: s.name,
        open: s.open,
        tier_counts: s.counts === undefined ? null : wireCounts(s.counts),
        ...(s.error === undefined ? {} : { error: s.error }),
      })),
      count: list.length,
    };
  });

  app.delete('/api/v1/spaces/:name', { config: { kind: 'space-delete', write: true } }, async (request) => {
    const name = checkSpaceName((request.params as { name: string }).name, 'the space name in the path');
    if (!(await spaces.remove(name))) {
      throw new HttpError(404, 'SPACE_NOT_FOUND', spaces.mode === 'dir'
        ? `no memory space ${JSON.stringify(name)}: this server serves a single store, the space "default"`
        : `no memory space ${JSON.stringify(name)}`);
    }
    return { space: name, deleted: true };
  });

  app.get('/api/v1/memories', { schema: { querystring: listQuerySchema }, config: { kind: 'list' } }, async (request) => {
    const q = request.query as FilterQuery & {
      tier?: TierSelector; offset?: string; limit?: string; cursor?: string; include_embeddings?: 'true' | 'false';
    };
    if (q.cursor !== undefined && q.offset !== undefined) {
      throw new HttpError(400, 'INVALID_ARGUMENT',
        'pass either cursor or offset, not both: a cursor already says where its page starts');
    }
    const filter = filterFromQuery(q);
    const page = await inSpace(request, false, (store) => store.list({
      tier: q.tier ?? 'hot',
      // Any number of digits (any integer offset, a limit capped at
      // 1000): one too long for a double is past every record anyway.
      ...(q.offset === undefined ? {} : { offset: Math.min(Number(q.offset), Number.MAX_SAFE_INTEGER) }),
      ...(q.limit === undefined ? {} : { limit: Math.min(Number(q.limit), MAX_LIST_LIMIT) }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      includeEmbeddings: parseBoolean(q.include_embeddings),
      ...(filter === undefined ? {} : { filter }),
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
      await inSpace(request, true, (store) => store.putMany(inputs));
      reply.code(201);
      return { ids: inputs.map((m) => m.id), count: inputs.length };
    }
    const input = fromWire(body);
    await inSpace(request, true, (store) => store.put(input));
    reply.code(201).header('location', `/api/v1/memories/${encodeURIComponent(input.id)}`);
    return { id: input.id, ids: [input.id], count: 1 };
  });

  app.get('/api/v1/memories/:id', {
    schema: { params: idParamsSchema, querystring: getQuerySchema }, config: { kind: 'get' },
  }, async (request) => {
    const id = pathId(request);
    const { include_embeddings } = request.query as { include_embeddings?: 'true' | 'false' };
    const memory = await inSpace(request, false, (store) => store.get(id, { includeEmbedding: parseBoolean(include_embeddings) }));
    if (memory === undefined) throw new HttpError(404, 'NOT_FOUND', `no memory has the id ${JSON.stringify(id)}`);
    return toWire(memory);
  });

  app.delete('/api/v1/memories/:id', {
    schema: { params: idParamsSchema }, config: { kind: 'delete', write: true },
  }, async (request) => {
    const id = pathId(request);
    // A DELETE never creates a space.
    if (!(await inSpace(request, false, (store) => store.delete(id)))) {
      throw new HttpError(404, 'NOT_FOUND', `no memory has the id ${JSON.stringify(id)}`);
    }
    return { id, deleted: true };
  });

  app.post('/api/v1/recall', { schema: { body: recallBodySchema }, config: { kind: 'recall' } }, async (request) => {
    const body = request.body as {
      embedding: number[]; k?: number; tier?: TierSelector; min_confidence?: number; include_embeddings?: boolean; filter?: WireFilter;
    };
    const filter = filterFromBody(body.filter);
    const hits = await inSpace(request, false, (store) => store.recallAsync(body.embedding, {
      ...(body.k === undefined ? {} : { k: body.k }),
      ...(body.tier === undefined ? {} : { tier: body.tier }),
      ...(body.min_confidence === undefined ? {} : { minConfidence: body.min_confidence }),
      includeEmbeddings: body.include_embeddings === true,
      ...(filter === undefined ? {} : { filter }),
    }));
    return {
      hits: hits.map((h) => ({ id: h.id, score: h.score, tier: h.tier, memory: toWire(h.memory) })),
      count: hits.length,
    };
  });

  return app;
}

/**
 * Starts the HTTP server: opens `dir` (or takes `store`, or serves the spaces
 * under `root`; see ServerOptions), builds the routes and listens. A host
 * process can mount tierstore this way:
 *
 * ```ts
 * import { startServer } from 'tierstore/server';
 * const server = await startServer({ root: './spaces', dimensions: 768, port: 8080, token: process.env.TOKEN });
 * // ... requests with 'X-Memory-Space: team-a' work on ./spaces/team-a
 * await server.close(); // drains, then closes every open store
 * ```
 *
 * Rejects with INVALID_ARGUMENT for bad options (not exactly one of dir /
 * store / root, `root` without `dimensions`) and for a non-loopback host
 * without a token.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const opts = optionsObject(options, 'startServer()') as ServerOptions;
  const sources = [opts.dir, opts.store, opts.root].filter((x) => x !== undefined).length;
  if (sources !== 1) {
    throw new TierStoreError('INVALID_ARGUMENT',
      'startServer(): give exactly one of options.dir (a store directory), options.store (an open MemoryStore) ' +
        'and options.root (a directory of memory spaces)');
  }
  if (opts.root === undefined && (opts.dimensions !== undefined || opts.maxOpenSpaces !== undefined)) {
    throw new TierStoreError('INVALID_ARGUMENT',
      'startServer(): options.dimensions and options.maxOpenSpaces go with options.root (with dir, use storeOptions.dimensions)');
  }
  if (opts.root !== undefined && (typeof opts.root !== 'string' || opts.root.length === 0)) {
    throw new TierStoreError('INVALID_ARGUMENT', `startServer(): options.root must be a directory path, got ${describe(opts.root)}`);
  }
  if (opts.root !== undefined && opts.dimensions === undefined) {
    throw new TierStoreError('INVALID_ARGUMENT', 'startServer(): options.root needs options.dimensions (of the spaces a write creates), 1..65536');
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
  integerOption(opts.bodyLimit, 'bodyLimit', 1, MAX_BODY_LIMIT, 0);

  let app: FastifyInstance | undefined;
  const log = (name: string, error: unknown) => app?.log.error({ err: error }, `closing the store of space ${name} failed`);
  const spaces: Spaces = opts.root !== undefined
    ? spacesOf({
      root: opts.root,
      dimensions: opts.dimensions as number,
      ...(opts.maxOpenSpaces === undefined ? {} : { maxOpenSpaces: opts.maxOpenSpaces }),
      ...(opts.storeOptions === undefined ? {} : { storeOptions: opts.storeOptions }),
    }, 'startServer()', log)
    : opts.store !== undefined
      ? spacesOf(opts.store, 'startServer()', log)
      : new SingleSpace(open(opts.dir as string, opts.storeOptions), true);
  try {
    app = buildApp(spaces, {
      token,
      ...(opts.protectReads === undefined ? {} : { protectReads: opts.protectReads }),
      ...(opts.bodyLimit === undefined ? {} : { bodyLimit: opts.bodyLimit }),
      ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    });
    await app.listen({ port, host });
  } catch (error) {
    spaces.close();
    throw error;
  }
  const running = app;

  const address = running.server.address() as AddressInfo;
  const shown = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const url = `http://${address.family === 'IPv6' ? `[${shown}]` : shown}:${address.port}`;
  const drain = drains.get(running)!;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      drain.closing = true;
      if (!(await drain.idle(closeTimeout))) {
        running.log.warn(`closing with ${drain.inFlight} requests still in flight after ${closeTimeout} ms`);
        running.server.closeAllConnections();
      }
      // The onClose hook closes the stores (each waits for a recall still running on its worker threads).
      await running.close();
    })();
    return closed;
  };
  return {
    url, port: address.port, server: running, close, inFlight: () => drain.inFlight, openSpaces: () => spaces.openCount(),
  };
}
