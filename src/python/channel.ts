/**
 * Transport of the worker control channel: a Unix socket that the worker
 * connects to twice, right after it starts: first the main channel (every
 * message but `cancel`), then the cancel channel (`cancel` only, so a cancel
 * reaches a worker whose main thread is busy in user code without a second
 * thread reading every request). Frames (./codec.ts) travel over them with
 * direct reads into one reusable buffer and one write per frame, which costs
 * the server far less per request than a child's stdin/stdout streams. The
 * socket lives in an owner-only directory and is unlinked as soon as the
 * worker is connected.
 */
import { join } from "node:path";
import { FrameDecoder } from "./codec.ts";

/** Longest socket path that fits `sockaddr_un` on Linux and macOS, with room to spare. */
const MAX_SOCKET_PATH = 100;
/** Read buffer; a frame that fits in one read is handed out without a copy. */
const READ_BUFFER_BYTES = 64 * 1024;

let counter = 0;
const madeDirs = new Set<string>();
let fallbackDir: string | undefined;
/** Listeners whose socket is in `fallbackDir`; the directory goes when the last one closes. */
let inFallback = 0;

/** A connected worker: its main channel and its cancel channel. */
export interface WorkerConns {
  readonly main: Deno.UnixConn;
  readonly cancel: Deno.UnixConn;
}

/** The listening end of one worker's channel, before the worker connected. */
export class ChannelListener {
  /** Socket path, passed to the worker as `--channel PATH`. */
  readonly path: string;
  readonly #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  readonly #fallback: boolean;
  #closed = false;

  private constructor(
    path: string,
    listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>,
    fallback: boolean,
  ) {
    this.path = path;
    this.#listener = listener;
    this.#fallback = fallback;
  }

  /** The private temporary directory in use when socket paths are too long, if any (tests). */
  static get fallbackDir(): string | undefined {
    return fallbackDir;
  }

  /**
   * Listens on a fresh socket in `dir` (created owner-only if missing). When
   * `dir` is too deep for a socket path, a private temporary directory is
   * used instead.
   */
  static open(dir: string): ChannelListener {
    const name = `w${Deno.pid}-${++counter}.sock`;
    let path = join(dir, name);
    if (path.length > MAX_SOCKET_PATH) {
      fallbackDir ??= Deno.makeTempDirSync({ prefix: "cortex-serve-" });
      path = join(fallbackDir, name);
    } else if (!madeDirs.has(dir)) {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      madeDirs.add(dir);
    }
    try {
      Deno.removeSync(path); // a leftover of a crashed server with a recycled pid
    } catch {
      // Not there: the usual case.
    }
    const fallback = fallbackDir !== undefined && path.startsWith(fallbackDir);
    let listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      if (fallback && inFallback === 0) removeFallbackDir();
      throw error;
    }
    if (fallback) inFallback++;
    return new ChannelListener(path, listener, fallback);
  }

  /**
   * Waits for the worker's two connections, main channel first. Resolves
   * `undefined` when `gone` settles first (the worker exited before
   * connecting). Either way the listener is closed and the socket file
   * removed.
   */
  async accept(gone: Promise<unknown>): Promise<WorkerConns | undefined> {
    const stop = () => this.close();
    gone.then(stop, stop);
    let main: Deno.UnixConn | undefined;
    try {
      main = await this.#listener.accept();
      return { main, cancel: await this.#listener.accept() };
    } catch {
      main?.close();
      return undefined;
    } finally {
      this.close();
    }
  }

  /** Stops listening and removes the socket file; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    try {
      Deno.removeSync(this.path);
    } catch {
      // Already removed.
    }
    if (this.#fallback && --inFallback === 0) removeFallbackDir();
  }
}

function removeFallbackDir(): void {
  if (fallbackDir === undefined) return;
  try {
    Deno.removeSync(fallbackDir, { recursive: true });
  } catch {
    // Already gone.
  }
  fallbackDir = undefined;
}

/** Writes all of `data`, one frame at a time; `write` may take it in parts. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    offset += await conn.write(offset === 0 ? data : data.subarray(offset));
  }
}

/**
 * Reads frames from `conn` until end of input, calling `onPayload` for each
 * in order. `transient` is true when the payload is a view of the reusable
 * read buffer: it is valid only during the call, so copy what must outlive
 * it. A connection reset counts as end of input; a framing error throws.
 *
 * @throws {import("./codec.ts").FrameError} on a bad frame length
 */
export async function readPayloads(
  conn: Deno.Conn,
  maxFrameBytes: number,
  onPayload: (payload: Uint8Array, transient: boolean) => void,
): Promise<void> {
  const decoder = new FrameDecoder(maxFrameBytes);
  const buffer = new Uint8Array(READ_BUFFER_BYTES);
  const deliver = (payload: Uint8Array) => onPayload(payload, payload.buffer === buffer.buffer);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      return; // reset or closed by a kill: the exit status tells what happened
    }
    if (n === null) return;
    decoder.feed(buffer.subarray(0, n), deliver);
  }
}
