/**
 * The HTTP(S) listener: our own accept loop ({@link acceptLoop}) hands each
 * connection to the {@link ConnectionTracker}, which serves it with the
 * runtime's HTTP engine within the connection limits. A failed accept never
 * ends the process.
 *
 * A TLS listener cannot swap its certificate in place, so a new certificate
 * takes effect by binding a new listening socket on the same address: the
 * old one stops accepting (connections it already has finish their requests
 * with the old certificate), the new one serves every new connection.
 * Between the two a connection attempt may be refused for about a
 * millisecond.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { TlsMaterial } from "../security/tls.ts";
import { AcceptErrors, acceptLoop } from "./accept_loop.ts";
import { type ConnectionLimits, type ConnectionStats, ConnectionTracker } from "./connections.ts";
import { assertConnectionServing, type ConnectionHandlerInfo } from "./serve_connection.ts";

/** Options for {@link HttpListener.start}. */
export interface ListenOptions {
  readonly hostname: string;
  /** 0 picks a free port; a restart keeps the port first bound. */
  readonly port: number;
  /** Serve HTTPS with this certificate; plain HTTP when absent. */
  readonly tls?: TlsMaterial | undefined;
  readonly handler: (request: Request, info: ConnectionHandlerInfo) => Response | Promise<Response>;
  readonly limits: ConnectionLimits;
  /** Where accept failures and unhandled handler errors are logged. */
  readonly logger?: Logger | undefined;
}

/** How long a restart waits for the old socket to release the address. */
const REBIND_TIMEOUT_MS = 2000;

/** A listening server whose TLS certificate can be replaced. */
export class HttpListener {
  readonly #options: ListenOptions;
  readonly #connections: ConnectionTracker;
  readonly #acceptErrors: AcceptErrors;
  #listener: Deno.Listener;
  #tls: TlsMaterial | undefined;
  /** Accept loops of this listener and of those replaced by a new certificate, until they end. */
  readonly #loops = new Set<Promise<void>>();

  private constructor(options: ListenOptions, listener: Deno.Listener) {
    this.#options = options;
    this.#connections = new ConnectionTracker(options.limits, options.handler, options.logger);
    this.#acceptErrors = new AcceptErrors(options.logger);
    this.#listener = listener;
    this.#tls = options.tls;
    this.#run(listener, options.tls !== undefined);
  }

  /**
   * Binds and starts serving.
   *
   * @throws {Deno.errors.AddrInUse} and other bind errors
   * @throws {ConnectionServingUnavailable} on a Deno this program is not built for
   */
  static start(options: ListenOptions): HttpListener {
    assertConnectionServing();
    return new HttpListener(options, _listen(options, options.port, options.tls));
  }

  /** The bound address (the real port when 0 was asked for). */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Open connections and counts of accepted, closed and refused ones. */
  get connections(): ConnectionStats {
    return this.#connections;
  }

  /** Failed accepts since start. */
  get acceptErrors(): number {
    return this.#acceptErrors.total;
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
    _closeListener(this.#listener);
    try {
      this.#listener = await _rebind(this.#options, port, tls);
      this.#tls = tls;
    } catch (error) {
      this.#listener = await _rebind(this.#options, port, previous);
      throw error;
    } finally {
      this.#run(this.#listener, this.#tls !== undefined);
    }
  }

  /** Stops accepting and resolves once every open request has finished. */
  async shutdown(): Promise<void> {
    _closeListener(this.#listener);
    await Promise.all([this.#connections.shutdown(), ...this.#loops]);
    this.#acceptErrors[Symbol.dispose]();
  }

  #run(listener: Deno.Listener, tls: boolean): void {
    const connections = this.#connections;
    const sink = {
      take: (conn: Deno.Conn) => connections.take(conn, tls),
      whenRoom: () => connections.whenRoom(),
    };
    const loop: Promise<void> = acceptLoop(listener, sink, this.#acceptErrors).finally(() =>
      this.#loops.delete(loop)
    );
    this.#loops.add(loop);
  }
}

function _listen(options: ListenOptions, port: number, tls: TlsMaterial | undefined): Deno.Listener {
  const address = { hostname: options.hostname, port };
  return tls === undefined
    ? Deno.listen(address)
    : Deno.listenTls({ ...address, cert: tls.cert, key: tls.key, alpnProtocols: ["h2", "http/1.1"] });
}

function _closeListener(listener: Deno.Listener): void {
  try {
    listener.close();
  } catch {
    // Closed already.
  }
}

/** Binds `port` again, retrying while the retired socket still holds it. */
async function _rebind(
  options: ListenOptions,
  port: number,
  tls: TlsMaterial | undefined,
): Promise<Deno.Listener> {
  const deadline = Date.now() + REBIND_TIMEOUT_MS;
  while (true) {
    try {
      return _listen(options, port, tls);
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}
