/**
 * Serving HTTP on one connection the server accepted itself. `Deno.serve`
 * owns its accept loop and offers no header timeout, idle timeout or
 * connection cap, and it ends the process when `accept` fails (out of file
 * descriptors). The runtime serves a single accepted connection with the
 * same native HTTP/1.1 and HTTP/2 engine through `serveHttpOnConnection`, a
 * function the runtime exposes under `Deno[Deno.internal]` (it is what
 * `Deno.serve` is made of). Using it keeps the request path exactly as fast as
 * `Deno.serve` while the accept loop and every connection's lifetime become
 * ours. The Deno version is pinned with the program; a runtime without the
 * function is refused at start with {@link ConnectionServingUnavailable}.
 *
 * @module
 */

/** A connection being served: the subset of `Deno.HttpServer` it has. */
export interface ServedConnection {
  /** Settles when the connection is closed (never rejects). */
  readonly finished: Promise<void>;
  /** Finishes the requests in flight, then closes the connection. */
  shutdown(): Promise<void>;
}

/** The handler's second argument on a served connection. */
export interface ConnectionHandlerInfo extends Deno.ServeHandlerInfo<Deno.NetAddr> {
  /** Settles once the response was fully written, or rejects when it could not be. */
  readonly completed: Promise<void>;
}

/** Options of {@link serveConnection}. */
export interface ServeConnectionOptions {
  /** Aborting it closes the connection at once, requests in flight included. */
  readonly signal: AbortSignal;
  /** Answers a request whose handler threw. */
  readonly onError: (error: unknown) => Response | Promise<Response>;
}

/** The runtime cannot serve a connection accepted by the program. */
export class ConnectionServingUnavailable extends Error {
  readonly code = "connection_serving_unavailable";
  constructor() {
    super(
      `This Deno (${Deno.version.deno}) does not expose serveHttpOnConnection: ` +
        "run cortex-serve with the Deno version it is built for (see .tools/bin/deno)",
    );
    this.name = "ConnectionServingUnavailable";
  }
}

type InternalServe = (
  connection: Deno.Conn,
  signal: AbortSignal,
  handler: (request: Request, info: ConnectionHandlerInfo) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: (scheme: string) => void,
) => ServedConnection;

let cached: InternalServe | undefined;

/** The runtime's `serveHttpOnConnection`, or {@link ConnectionServingUnavailable}. */
function _internalServe(): InternalServe {
  if (cached !== undefined) return cached;
  const deno = Deno as unknown as Record<PropertyKey, unknown> & { internal?: symbol };
  const internals = deno.internal === undefined ? undefined : deno[deno.internal];
  const serve = (internals as Record<string, unknown> | undefined)?.["serveHttpOnConnection"];
  if (typeof serve !== "function") throw new ConnectionServingUnavailable();
  cached = serve as InternalServe;
  return cached;
}

/** Throws {@link ConnectionServingUnavailable} now rather than at the first connection. */
export function assertConnectionServing(): void {
  _internalServe();
}

/**
 * Serves HTTP on `connection` (TCP or TLS; HTTP/2 when TLS negotiated it)
 * with `handler`, until the client closes, `signal` aborts or `shutdown` is
 * called. The connection belongs to the returned server from now on.
 */
export function serveConnection(
  connection: Deno.Conn,
  handler: (request: Request, info: ConnectionHandlerInfo) => Response | Promise<Response>,
  options: ServeConnectionOptions,
): ServedConnection {
  const served = _internalServe()(connection, options.signal, handler, options.onError, () => {});
  // A protocol error from the engine ends this connection only.
  const finished = served.finished.catch(() => {});
  return { finished, shutdown: () => served.shutdown().catch(() => {}) };
}
