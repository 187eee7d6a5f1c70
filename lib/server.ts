/**
 * HTTP server (issue 8): the engram memory API of the replaced system over a
 * MemoryStore, built on fastify. Interface first; implementation follows.
 */
import type { FastifyInstance } from 'fastify';

import { TierStoreError } from './errors.js';
import type { MemoryStore } from './store.js';
import type { OpenOptions } from './types.js';

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
  /** Bearer token required on write routes (POST, DELETE); default process.env.TIERSTORE_TOKEN. */
  token?: string;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /** fastify's request log (pino) on stdout. Default false. */
  logger?: boolean;
}

export function buildServer(
  _store: MemoryStore,
  _options?: Omit<ServerOptions, 'dir' | 'store' | 'port' | 'host'>,
): FastifyInstance {
  throw new TierStoreError('INVALID_ARGUMENT', 'buildServer: not implemented yet');
}

export function startServer(
  _options: ServerOptions,
): Promise<{ url: string; port: number; server: FastifyInstance; close(): Promise<void> }> {
  return Promise.reject(new TierStoreError('INVALID_ARGUMENT', 'startServer: not implemented yet'));
}
