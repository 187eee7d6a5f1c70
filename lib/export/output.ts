// Where an export writes its bytes: a file path (written to a temporary file
// beside it and renamed into place only when the export succeeded, so a failed
// export never leaves a truncated file under the target name) or a writable
// stream supplied by the caller. Every write waits for the stream's
// backpressure ('drain'), so an export never buffers more than one chunk ahead
// of a slow consumer.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import nodePath from 'node:path';

import { TierStoreError } from '../errors.js';

/** A node error's `code` and message, for our own messages. */
export function systemMessage(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e && typeof e.code === 'string' && typeof e.message === 'string') return e.message;
  return String(e && typeof e === 'object' && 'message' in e ? e.message : error);
}

export class ByteOutput {
  /** Bytes handed to the stream so far. */
  bytes = 0;
  readonly #stream: NodeJS.WritableStream;
  /** The name used in error messages. */
  readonly #name: string;
  /** Set when the output is a path: the temporary file and the final name. */
  readonly #tempPath: string | undefined;
  readonly #targetPath: string | undefined;
  readonly #end: boolean;
  #error: unknown;
  readonly #onError = (error: unknown): void => {
    this.#error ??= error;
  };

  private constructor(stream: NodeJS.WritableStream, name: string, end: boolean, tempPath?: string, targetPath?: string) {
    this.#stream = stream;
    this.#name = name;
    this.#end = end;
    this.#tempPath = tempPath;
    this.#targetPath = targetPath;
    stream.on('error', this.#onError);
  }

  /** Opens a path (through a temporary file) or wraps a stream. */
  static async open(output: string | NodeJS.WritableStream, end: boolean | undefined): Promise<ByteOutput> {
    if (typeof output === 'string') {
      const target = nodePath.resolve(output);
      const temp = nodePath.join(
        nodePath.dirname(target),
        `.${nodePath.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`,
      );
      const stream = fs.createWriteStream(temp, { flags: 'wx' });
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', reject);
      }).catch((error: unknown) => {
        throw new TierStoreError('IO_ERROR', `export: cannot create a file next to ${output}: ${systemMessage(error)}`, {
          cause: error,
        });
      });
      return new ByteOutput(stream, output, true, temp, target);
    }
    if (output === null || typeof output !== 'object' || typeof (output as NodeJS.WritableStream).write !== 'function') {
      throw new TierStoreError('INVALID_ARGUMENT', 'export: output must be a file path or a writable stream');
    }
    // Like stream.pipe(): the caller's stream is ended, except stdout/stderr.
    const isStdio = output === process.stdout || output === process.stderr;
    return new ByteOutput(output, 'the output stream', (end ?? true) && !isStdio);
  }

  #failure(): TierStoreError {
    const error = this.#error;
    if (error instanceof TierStoreError) return error;
    return new TierStoreError('IO_ERROR', `export: writing ${this.#name} failed: ${systemMessage(error)}`, {
      cause: error,
    });
  }

  /** Writes one chunk; resolves once the stream can take more. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#error !== undefined) throw this.#failure();
    if (chunk.byteLength === 0) return;
    this.bytes += chunk.byteLength;
    const stream = this.#stream;
    if (stream.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        stream.removeListener('drain', done);
        stream.removeListener('error', done);
        stream.removeListener('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('error', done);
      stream.on('close', done);
    });
    if (this.#error !== undefined) throw this.#failure();
  }

  /** Ends the stream (when it should be ended) and, for a path, moves the file into place. */
  async finish(): Promise<void> {
    const stream = this.#stream;
    if (this.#end) {
      await new Promise<void>((resolve) => {
        const done = (): void => resolve();
        // fs streams emit 'close' after the descriptor is closed; others may only 'finish'.
        stream.once(this.#tempPath !== undefined ? 'close' : 'finish', done);
        stream.once('error', done);
        stream.end();
      });
    }
    if (this.#error !== undefined) {
      const failure = this.#failure();
      await this.abort();
      throw failure;
    }
    stream.removeListener('error', this.#onError);
    if (this.#tempPath !== undefined && this.#targetPath !== undefined) {
      try {
        fs.renameSync(this.#tempPath, this.#targetPath);
      } catch (error) {
        await this.abort();
        throw new TierStoreError('IO_ERROR', `export: cannot move the finished file to ${this.#name}: ${systemMessage(error)}`, {
          cause: error,
        });
      }
    }
  }

  /** After a failure: for a path, closes and removes the temporary file (the target is untouched). */
  async abort(): Promise<void> {
    if (this.#tempPath === undefined) return;
    const stream = this.#stream as fs.WriteStream;
    if (!stream.closed) {
      await new Promise<void>((resolve) => {
        stream.once('close', () => resolve());
        stream.destroy();
      });
    }
    fs.rmSync(this.#tempPath, { force: true });
  }
}
