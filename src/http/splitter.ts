/**
 * `kind: TrafficSplitter` (Cortex 0.19+): one endpoint in front of several
 * APIs, each request handed to one of them at random by weight (percent).
 * The chosen API answers exactly as at its own endpoint; the access log
 * names it. A `shadow` API (Cortex 0.31+) also gets a copy of `weight`
 * percent of the requests, sent beside the real one; its answers are
 * dropped (they show in its access log and metrics only).
 *
 * @module
 */
import type { ResolvedSplitter } from "../config/types.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { PredictRoute } from "./predict.ts";
import { apiStatus } from "./status.ts";

/** `POST <splitter endpoint>`. */
export class SplitRoute {
  readonly splitter: ResolvedSplitter;
  readonly #routes: readonly PredictRoute[];
  /** Upper bounds of each route's share of [0, 100). */
  readonly #bounds: readonly number[];
  readonly #random: () => number;
  readonly #shadow: { readonly route: PredictRoute; readonly share: number } | undefined;

  /**
   * @param splitter the resolved splitter
   * @param routes the prediction route of each API, by API name
   * @param random a number in [0, 1), `Math.random` by default (tests pass their own)
   */
  constructor(
    splitter: ResolvedSplitter,
    routes: ReadonlyMap<string, PredictRoute>,
    random: () => number = Math.random,
  ) {
    this.splitter = splitter;
    const targets = splitter.apis.filter((t) => t.weight > 0 && t.shadow !== true);
    this.#routes = targets.map((t) => {
      const route = routes.get(t.api);
      if (route === undefined) throw new Error(`No route for api ${t.api} of splitter ${splitter.name}`);
      return route;
    });
    let sum = 0;
    this.#bounds = targets.map((t) => sum += t.weight);
    this.#random = random;
    const shadow = splitter.apis.find((t) => t.shadow === true);
    const shadowRoute = shadow && routes.get(shadow.api);
    this.#shadow = shadow && shadowRoute && shadow.weight > 0
      ? { route: shadowRoute, share: shadow.weight / 100 }
      : undefined;
  }

  /** The route a request goes to, for a draw `r` in [0, 1). */
  pick(r: number): PredictRoute {
    const at = r * 100;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) if (at < bounds[i]!) return this.#routes[i]!;
    return this.#routes[this.#routes.length - 1]!;
  }

  /** Answers a prediction request through one of the APIs (and mirrors it to the shadow, by its share). */
  handle(request: Request, path: string): Promise<Response> {
    const shadow = this.#shadow;
    if (shadow !== undefined && this.#random() < shadow.share) this.#mirror(shadow.route, request, path);
    return this.pick(this.#random()).handle(request, path);
  }

  /**
   * Sends a copy of `request` to the shadow: its body is teed, and the copy
   * has no signal of the client's, so it runs on after the real answer left.
   */
  #mirror(route: PredictRoute, request: Request, path: string): void {
    const copy = request.clone();
    const mirrored = new Request(request.url, { method: "POST", headers: copy.headers, body: copy.body });
    void route.handle(mirrored, path).then((response) => response.body?.cancel(), () => {});
  }
}

/** What `GET /`, `GET <splitter endpoint>` and the console show of a splitter. */
export function splitterStatus(
  splitter: ResolvedSplitter,
  pools: ReadonlyMap<string, ApiPool>,
  endpoints: ReadonlyMap<string, string>,
): Record<string, unknown> {
  const apis = splitter.apis.map((t) => {
    const pool = pools.get(t.api);
    const endpoint = endpoints.get(t.api) ?? "";
    return {
      api: t.api,
      weight: t.weight,
      ...(t.shadow === true ? { shadow: true } : {}),
      endpoint,
      status: pool === undefined ? "unknown" : apiStatus(pool, endpoint).status,
    };
  });
  const ready = apis.filter((a) => a.weight > 0 && !("shadow" in a)).every((a) => a.status === "ready");
  return { name: splitter.name, endpoint: splitter.endpoint, status: ready ? "ready" : "degraded", apis };
}
