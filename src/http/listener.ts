/**
 * The HTTP(S) listener around `Deno.serve`. `Deno.serve` cannot swap its
 * certificate in place, so a new certificate takes effect by restarting the
 * listener on the same address: the old one stops accepting (connections it
 * already has finish their requests with the old certificate), the new one
 * binds at once and serves every new connection. Between the two a
 * connection attempt may be refused for about a millisecond.
 *
 * @module
 */
import type { TlsMaterial } from "../security/tls.ts";

/** Options for {@link HttpListener.start}. */
export interface ListenOptions {
  readonly hostname: string;
  /** 0 picks a free port; a restart keeps the port first bound. */
  readonly port: number;
  /** Serve HTTPS with this certificate; plain HTTP when absent. */
  readonly tls?: TlsMaterial | undefined;
  readonly handler: Deno.ServeHandler<Deno.NetAddr>;
}

/** How long a restart waits for the old socket to release the address. */
const REBIND_TIMEOUT_MS = 2000;

/** A listening server whose TLS certificate can be replaced. */
export class HttpListener {
  readonly #options: ListenOptions;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #tls: TlsMaterial | undefined;
  /** Shutdowns of listeners replaced by a new certificate, until they finish. */
  readonly #retired = new Set<Promise<void>>();

  private constructor(options: ListenOptions, server: Deno.HttpServer<Deno.NetAddr>) {
    this.#options = options;
    this.#server = server;
    this.#tls = options.tls;
  }

  /**
   * Binds and starts serving.
   *
   * @throws {Deno.errors.AddrInUse} and other bind errors
   */
  static start(options: ListenOptions): HttpListener {
    return new HttpListener(options, _serve(options, options.port, options.tls));
  }

  /** The bound address (the real port when 0 was asked for). */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** `https` when serving TLS. */
  get scheme(): "http" | "https" {
    return this.#tls === undefined ? "http" : "https";
  }

  /** The URL of the listener, e.g. `https://127.0.0.1:8443`. */
  get url(): string {
    const { hostname, port } = this.addr;
    return `${this.scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  }

  /**
   * Restarts the listener with a new certificate on the same address. If
   * the new listener cannot start, the old certificate is bound again and
   * the error is thrown.
   *
   * @throws {Error} when neither certificate could be bound
   */
  async useTls(tls: TlsMaterial): Promise<void> {
    const port = this.addr.port;
    const previous = this.#tls;
    const retired: Promise<void> = this.#server.shutdown()
      .catch(() => {}) // a failed shutdown of a replaced listener leaves nothing to do
      .finally(() => this.#retired.delete(retired));
    this.#retired.add(retired);
    try {
      this.#server = await _rebind(this.#options, port, tls);
      this.#tls = tls;
    } catch (error) {
      this.#server = await _rebind(this.#options, port, previous);
      throw error;
    }
  }

  /** Stops accepting and resolves once every open request has finished. */
  async shutdown(): Promise<void> {
    await Promise.all([this.#server.shutdown(), ...this.#retired]);
  }
}

function _serve(options: ListenOptions, port: number, tls: TlsMaterial | undefined) {
  return Deno.serve({
    hostname: options.hostname,
    port,
    onListen: () => {},
    ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
  }, options.handler);
}

/** Binds `port` again, retrying while the retired socket still holds it. */
async function _rebind(
  options: ListenOptions,
  port: number,
  tls: TlsMaterial | undefined,
): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const deadline = Date.now() + REBIND_TIMEOUT_MS;
  while (true) {
    try {
      return _serve(options, port, tls);
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}
