/**
 * Zero-downtime reload (SIGHUP): the server serves one generation - a
 * deployment and the app built for it - at a time. A reload builds the next
 * generation beside the current one, waits until every API has a ready
 * replica, then switches the HTTP handler to it. The old generation finishes
 * the requests it already took and its workers stop. When the new version
 * fails (config error, staging error, init failure), it is stopped and the
 * current one keeps serving; the log says why.
 */
import type { Logger } from "../log/logger.ts";
import type { Deployment } from "./deployment.ts";
import { Emitter, waitUntil } from "./events.ts";

/** One project version being served: its deployment and the app for it. */
export interface Generation {
  readonly deployment: Deployment;
  readonly fetch: Deno.ServeHandler<Deno.NetAddr>;
}

/** What a {@link Reloader} needs. */
export interface ReloaderOptions {
  /**
   * Reads, stages and starts the next version (its replicas are starting).
   * Throws when the project on disk cannot be served; the message is logged.
   */
  readonly build: () => Promise<Generation>;
  /** Called when a reload failed after `build`, with the generation that keeps serving. */
  readonly restore?: (current: Generation) => Promise<void>;
  /** How long a retired generation may take to finish its requests. */
  readonly drainTimeoutMs: number;
  readonly logger: Logger;
}

/** The serving generation, swapped by {@link Reloader.reload}. */
export class Reloader {
  readonly #o: ReloaderOptions;
  #current: Generation;
  /**
   * Requests each generation is handling right now: a counter per
   * generation, kept while it serves (no Map entry made and deleted per request).
   */
  readonly #active = new Map<Generation, { count: number }>();
  readonly #retiring = new Set<Promise<void>>();
  #running: { readonly done: Promise<boolean>; readonly abort: AbortController } | undefined;
  #stopped = false;
  /** Emits a generation when its last request in progress finished. */
  readonly #finished = new Emitter<Generation>();
  /** Emits the new generation when requests switch to it. */
  readonly switched: Emitter<Generation> = new Emitter();

  constructor(initial: Generation, options: ReloaderOptions) {
    this.#current = initial;
    this.#o = options;
  }

  /** The generation new requests go to. */
  get current(): Generation {
    return this.#current;
  }

  /** The HTTP handler: routes each request to the current generation. */
  readonly fetch: Deno.ServeHandler<Deno.NetAddr> = async (request, info) => {
    const generation = this.#current;
    let active = this.#active.get(generation);
    if (active === undefined) this.#active.set(generation, active = { count: 0 });
    active.count++;
    try {
      return await generation.fetch(request, info);
    } finally {
      if (--active.count === 0) {
        if (generation !== this.#current) this.#active.delete(generation);
        this.#finished.emit(generation);
      }
    }
  };

  /**
   * Resolves when the serving generation has a ready replica for every API,
   * following reloads: a reload that replaces a version before it was ready
   * resolves this once the new one serves. Rejects when `signal` aborts.
   */
  async whenReady(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const generation = this.#current;
      const replaced = new AbortController();
      const off = this.switched.on(() => replaced.abort(new Error("Replaced by a reload")));
      try {
        const either = signal === undefined ? replaced.signal : AbortSignal.any([signal, replaced.signal]);
        await generation.deployment.whenReady(either);
        return;
      } catch (error) {
        if (signal?.aborted || !replaced.signal.aborted) throw error;
      } finally {
        off();
      }
    }
  }

  /**
   * Loads the project again and switches to it once it is ready. A reload
   * asked for while one is waiting for its replicas replaces it (the newest
   * files win). Resolves with true when the new version serves.
   */
  reload(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    const previous = this.#running;
    previous?.abort.abort(new Error("A newer reload replaced this one"));
    const abort = new AbortController();
    const done = (previous?.done ?? Promise.resolve(true))
      .then(() => this.#reloadOnce(abort.signal))
      .catch((error) => {
        this.#o.logger.error("reload failed: the running version keeps serving", { error: message(error) });
        return false;
      })
      .finally(() => {
        if (this.#running?.done === done) this.#running = undefined;
      });
    this.#running = { done, abort };
    return done;
  }

  /**
   * Abandons a reload in progress, drains the current generation within
   * `drainMs` and stops every worker. Returns true when nothing was cut off.
   */
  async stop(drainMs: number): Promise<boolean> {
    this.#stopped = true;
    const running = this.#running;
    running?.abort.abort(new Error("The server is shutting down"));
    await running?.done;
    const [drained] = await Promise.all([
      this.#current.deployment.stop(drainMs),
      Promise.all(this.#retiring),
    ]);
    return drained;
  }

  async #reloadOnce(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    const log = this.#o.logger;
    const started = performance.now();
    log.info("reloading: starting the new version beside the running one");
    let next: Generation;
    try {
      next = await this.#o.build();
    } catch (error) {
      log.error("reload failed: the running version keeps serving", { error: message(error) });
      await this.#o.restore?.(this.#current).catch(() => {});
      return false;
    }
    try {
      await next.deployment.whenReady(signal, { failOnInitError: true });
    } catch (error) {
      log.error("reload failed: the running version keeps serving", { error: message(error) });
      await next.deployment.stop(0);
      await this.#o.restore?.(this.#current).catch(() => {});
      return false;
    }
    const old = this.#current;
    this.#current = next;
    this.switched.emit(next);
    log.info("reloaded: new requests go to the new version", {
      dir: next.deployment.stagedDir,
      apis: next.deployment.project.apis.map((api) => api.endpoint),
      reload_ms: Math.round(performance.now() - started),
    });
    this.#retire(old);
    return true;
  }

  /** Lets `old` finish the requests it took, then stops its workers. */
  #retire(old: Generation): void {
    const deadline = Date.now() + this.#o.drainTimeoutMs;
    const log = this.#o.logger;
    const retiring = (async () => {
      await waitUntil(
        [this.#finished],
        () => (this.#active.get(old)?.count ?? 0) === 0 ? true : undefined,
        { timeoutMs: this.#o.drainTimeoutMs },
      ).catch(() => {}); // drain time is up: stop() below cuts off what is left
      // Its counter stays while it serves; one still counting is deleted when it reaches 0.
      if ((this.#active.get(old)?.count ?? 0) === 0) this.#active.delete(old);
      const drained = await old.deployment.stop(Math.max(0, deadline - Date.now()));
      log.info("previous version stopped", { dir: old.deployment.stagedDir, drained });
    })().catch((error) => {
      log.error("stopping the previous version failed", { error: message(error) });
    }).finally(() => this.#retiring.delete(retiring));
    this.#retiring.add(retiring);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
