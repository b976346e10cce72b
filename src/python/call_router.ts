/**
 * The outstanding requests of one worker, by id: what each message from the
 * worker means for them (an answer, a stream's item or end, an error), and
 * the calls their callers hold. Sending is the worker process's job; this
 * file only decides.
 */
import {
  type InitMessage,
  type PredictBatchMessage,
  ProtocolError,
  type ReplyMessage,
  type ServerMessage,
} from "./protocol.ts";
import { PredictStream } from "./predict_stream.ts";
import type { WorkerTimings } from "./worker_timings.ts";
import { PredictFailedError } from "./worker_errors.ts";

/** How the worker finished with a request: answered, cancelled, or lost with the worker. */
export type CallEnd = "answered" | "cancelled" | "lost";

/** The first answer to a request: one JSON body, or a stream of JSON items. */
export type PredictAnswer =
  | { readonly type: "body"; readonly body: Uint8Array; readonly timings?: WorkerTimings }
  | { readonly type: "stream"; readonly stream: PredictStream };

/** A request sent to the worker. */
export interface PredictCall {
  readonly id: number;
  /**
   * Settles with the first answer (a body, or a stream whose items follow);
   * rejects with PredictFailedError (kind `cancelled` after a cancel),
   * WorkerExitedError or ProtocolError.
   */
  readonly answer: Promise<PredictAnswer>;
  /**
   * Resolves when the worker is done with the request: the answer, the end
   * of the stream, an error, or the worker's end (`lost`). Never rejects.
   */
  readonly finished: Promise<CallEnd>;
  /** Sends `cancel` (once); nothing happens after the request finished. */
  cancel(): void;
}

/**
 * Where a request's outcome goes instead of promises (the hot path: no
 * promise, reaction or closure per request). `answered` or `failed` comes
 * once, then `finished` once. Never called from inside the call that sent
 * the request or cancelled it: what the worker answers then (a fake worker
 * answers at once) waits for a microtask, as a promise's reaction would.
 */
export interface CallSink {
  /** The first answer: a body, or a stream whose items follow. */
  answered(answer: PredictAnswer): void;
  /** Failed before a first answer: PredictFailedError (kind `cancelled` after a cancel), or the worker's end. */
  failed(error: Error): void;
  /** The worker is done with the request. */
  finished(end: CallEnd): void;
}

/** A request sent with a {@link CallSink}: its outcome goes there. */
export interface CallHandle {
  readonly id: number;
  /** Sends `cancel` (once); nothing happens after the request finished. */
  cancel(): void;
}

/** The answer to one request of a batch. */
export type BatchOutcome =
  | { readonly ok: true; readonly body: Uint8Array }
  | { readonly ok: false; readonly error: PredictFailedError };

/** A batch sent to the worker (one `predict_batch` frame). */
export interface BatchCall {
  /** The request ids, one per sample, in order. */
  readonly ids: readonly number[];
  /**
   * One outcome per sample, in order, once every id is answered; rejects
   * with WorkerExitedError or ProtocolError when the worker ended or broke
   * the protocol before that (every request of the batch is lost).
   */
  readonly outcomes: Promise<BatchOutcome[]>;
  /** Like {@link PredictCall.finished}: `cancelled` when every id was. */
  readonly finished: Promise<CallEnd>;
  /**
   * Cancels the whole batch: sends `cancel` for each of its ids not yet
   * answered (the worker may not have read the batch yet; any one id
   * cancels it all once running). A batch serves several clients: call it
   * only once every one of them is gone.
   */
  cancel(): void;
}

/** Routing state of one outstanding request or batch, by id. */
class SingleRoute implements CallHandle {
  readonly kind = "single";
  stream: PredictStream | undefined = undefined;
  cancelled = false;

  constructor(
    readonly id: number,
    readonly sink: CallSink,
    readonly router: CallRouter,
  ) {}

  cancel(): void {
    this.router.cancelSingle(this);
  }
}

/** The promises of a {@link PredictCall}, as a sink. */
class PromiseSink implements CallSink {
  readonly answer = Promise.withResolvers<PredictAnswer>();
  readonly finishedAt = Promise.withResolvers<CallEnd>();

  constructor() {
    this.answer.promise.catch(() => {}); // a caller may only watch `finished`
  }
  answered(answer: PredictAnswer): void {
    this.answer.resolve(answer);
  }
  failed(error: Error): void {
    this.answer.reject(error);
  }
  finished(end: CallEnd): void {
    this.finishedAt.resolve(end);
  }
}

interface BatchRoute {
  readonly kind: "batch";
  readonly ids: readonly number[];
  readonly outcomes: (BatchOutcome | undefined)[];
  readonly done: PromiseWithResolvers<BatchOutcome[]>;
  readonly finished: PromiseWithResolvers<CallEnd>;
  left: number;
  cancelled: boolean;
}

interface InitRoute {
  readonly kind: "init";
  readonly reply: PromiseWithResolvers<ReplyMessage>;
}

type Route = SingleRoute | BatchRoute | InitRoute;

/** Tracks a worker's outstanding calls; `send` writes a message to the worker. */
export class CallRouter {
  /** Outstanding requests by id (0 is `init`); a batch is there under each of its ids. */
  readonly #routes = new Map<number, Route>();
  readonly #send: (message: ServerMessage) => void;
  #window = 1;
  #nextId = 1;
  /** Inside a send or cancel of the caller's: sink calls wait in `#deferred` for a microtask. */
  #depth = 0;
  readonly #deferred: (() => void)[] = [];

  constructor(send: (message: ServerMessage) => void) {
    this.#send = send;
  }

  /** Sends `init`; resolves with the worker's reply to it. */
  init(message: Omit<InitMessage, "type">): Promise<ReplyMessage> {
    if (this.#routes.has(0)) throw new Error("Worker init is already running");
    this.#window = message.stream_window;
    const route: InitRoute = { kind: "init", reply: Promise.withResolvers() };
    this.#routes.set(0, route);
    this.#send({ type: "init", ...message });
    return route.reply.promise;
  }

  /**
   * Sends one request, with the W3C trace context `trace` when tracing; `gone`
   * fails it at once instead (the worker is not running).
   */
  single(sample: Uint8Array, debug: boolean, gone: Error | undefined, trace?: Uint8Array): PredictCall {
    const sink = new PromiseSink();
    const handle = this.singleTo(sink, sample, debug, gone, trace);
    return {
      id: handle.id,
      answer: sink.answer.promise,
      finished: sink.finishedAt.promise,
      cancel: () => handle.cancel(),
    };
  }

  /** Like {@link single}, its outcome going to `sink` (see {@link CallSink}). */
  singleTo(
    sink: CallSink,
    sample: Uint8Array,
    debug: boolean,
    gone: Error | undefined,
    trace?: Uint8Array,
  ): CallHandle {
    const id = this.#nextId++;
    const route = new SingleRoute(id, sink, this);
    this.#start(route, [id], gone, { type: "predict", id, sample, debug, trace });
    return route;
  }

  /** {@link CallHandle.cancel} of a single request. */
  cancelSingle(route: SingleRoute): void {
    this.#cancel(route, [route.id]);
  }

  /**
   * Sends one batch, with one W3C trace context per sample when tracing;
   * `gone` fails it at once instead (the worker is not running).
   */
  batch(
    samples: readonly Uint8Array[],
    debug: boolean,
    gone: Error | undefined,
    traces?: readonly Uint8Array[],
  ): BatchCall {
    if (samples.length === 0) throw new RangeError("A batch needs at least one sample");
    const ids = samples.map(() => this.#nextId++);
    const route: BatchRoute = {
      kind: "batch",
      ids,
      outcomes: ids.map(() => undefined),
      done: Promise.withResolvers(),
      finished: Promise.withResolvers(),
      left: ids.length,
      cancelled: false,
    };
    route.done.promise.catch(() => {});
    const message: PredictBatchMessage = traces === undefined
      ? { type: "predict_batch", ids, samples, debug }
      : { type: "predict_batch", ids, samples, debug, traces };
    this.#start(route, ids, gone, message);
    return {
      ids,
      outcomes: route.done.promise,
      finished: route.finished.promise,
      cancel: () => this.#cancel(route, ids),
    };
  }

  /**
   * Routes one message from the worker; `transient` bytes are copied before
   * they are kept.
   *
   * @throws {ProtocolError} when the message fits no outstanding call
   */
  deliver(message: ReplyMessage, transient: boolean): void {
    const id = message.type === "ready" || message.type === "init_error" ? 0 : message.id;
    const route = this.#routes.get(id);
    if (route === undefined) {
      const expected = [...this.#routes.keys()].join(" or ") || "nothing";
      throw new ProtocolError(`Worker sent "${message.type}" for request ${id}, expected ${expected}`);
    }
    if (route.kind === "init") {
      this.#routes.delete(0);
      route.reply.resolve(message);
    } else if (route.kind === "single") {
      this.#deliverSingle(route, message, transient);
    } else {
      this.#deliverBatch(route, id, message, transient);
    }
  }

  /** Fails every outstanding call with `error` (the worker ended or broke the protocol). */
  failAll(error: Error): void {
    const routes = new Set(this.#routes.values());
    this.#routes.clear();
    for (const route of routes) {
      if (route.kind === "init") route.reply.reject(error);
      else this.#settle(route, error);
    }
  }

  /** Registers and sends a request; one that cannot be sent (gone, too large) fails alone. */
  #start(
    route: SingleRoute | BatchRoute,
    ids: readonly number[],
    gone: Error | undefined,
    message: ServerMessage,
  ): void {
    this.#depth++;
    try {
      if (gone !== undefined) return this.#settle(route, gone);
      for (const id of ids) this.#routes.set(id, route);
      try {
        this.#send(message);
      } catch (error) {
        for (const id of ids) this.#routes.delete(id);
        this.#settle(route, error instanceof Error ? error : new Error(String(error)));
      }
    } finally {
      this.#leave();
    }
  }

  /** Ends a send or cancel of the caller's; what its sinks were told meanwhile follows in a microtask. */
  #leave(): void {
    if (--this.#depth > 0 || this.#deferred.length === 0) return;
    const deferred = this.#deferred.splice(0);
    queueMicrotask(() => {
      for (const notify of deferred) notify();
    });
  }

  #answered(route: SingleRoute, answer: PredictAnswer): void {
    if (this.#depth > 0) this.#deferred.push(() => route.sink.answered(answer));
    else route.sink.answered(answer);
  }

  #failed(route: SingleRoute, error: Error): void {
    if (this.#depth > 0) this.#deferred.push(() => route.sink.failed(error));
    else route.sink.failed(error);
  }

  #finished(route: SingleRoute, end: CallEnd): void {
    if (this.#depth > 0) this.#deferred.push(() => route.sink.finished(end));
    else route.sink.finished(end);
  }

  /** Sends `cancel` once per id still outstanding (every id of a batch: the worker may not have read it yet). */
  #cancel(route: SingleRoute | BatchRoute, ids: readonly number[]): void {
    if (route.cancelled) return;
    route.cancelled = true;
    this.#depth++;
    try {
      for (const id of ids) if (this.#routes.has(id)) this.#send({ type: "cancel", id });
    } finally {
      this.#leave();
    }
  }

  #deliverSingle(route: SingleRoute, message: ReplyMessage, transient: boolean): void {
    const copy = (bytes: Uint8Array) => transient ? bytes.slice() : bytes;
    switch (message.type) {
      case "result":
        if (route.stream) throw new ProtocolError(`Worker sent "result" inside stream ${route.id}`);
        this.#routes.delete(route.id);
        this.#answered(
          route,
          message.timings === undefined
            ? { type: "body", body: copy(message.prediction) }
            : { type: "body", body: copy(message.prediction), timings: message.timings },
        );
        this.#finished(route, "answered");
        return;
      case "item":
      case "end": {
        const stream = route.stream ?? this.#openStream(route);
        if (message.type === "item") {
          if (!stream.push(copy(message.value))) {
            throw new ProtocolError(
              `Worker sent more than ${this.#window} unacknowledged items on stream ${route.id}`,
            );
          }
          return;
        }
        if (message.items !== stream.received) {
          throw new ProtocolError(
            `Worker ended stream ${route.id} at ${message.items} items, sent ${stream.received}`,
          );
        }
        this.#routes.delete(route.id);
        stream.end();
        this.#finished(route, route.cancelled ? "cancelled" : "answered");
        return;
      }
      case "error": {
        this.#routes.delete(route.id);
        const error = new PredictFailedError(message.kind, message.error, message.traceback);
        if (route.stream) route.stream.end(error);
        else this.#failed(route, error);
        this.#finished(route, message.kind === "cancelled" ? "cancelled" : "answered");
        return;
      }
      default:
        throw new ProtocolError(`Worker sent "${message.type}" for request ${route.id}`);
    }
  }

  #openStream(route: SingleRoute): PredictStream {
    const stream = new PredictStream({
      credit: (n) => {
        if (this.#routes.get(route.id) === route) this.#send({ type: "credit", id: route.id, n });
      },
      cancel: () => this.#cancel(route, [route.id]),
    }, this.#window);
    route.stream = stream;
    this.#answered(route, { type: "stream", stream });
    return stream;
  }

  #deliverBatch(route: BatchRoute, id: number, message: ReplyMessage, transient: boolean): void {
    const at = route.ids.indexOf(id);
    if (message.type === "result") {
      route.outcomes[at] = { ok: true, body: transient ? message.prediction.slice() : message.prediction };
    } else if (message.type === "error") {
      route.outcomes[at] = {
        ok: false,
        error: new PredictFailedError(message.kind, message.error, message.traceback),
      };
    } else {
      throw new ProtocolError(`Worker sent "${message.type}" for request ${id} of a batch`);
    }
    this.#routes.delete(id);
    if (--route.left > 0) return;
    const outcomes = route.outcomes as BatchOutcome[];
    route.done.resolve(outcomes);
    const allCancelled = outcomes.every((o) => !o.ok && o.error.kind === "cancelled");
    route.finished.resolve(allCancelled ? "cancelled" : "answered");
  }

  #settle(route: SingleRoute | BatchRoute, error: Error): void {
    if (route.kind === "single") {
      if (route.stream) route.stream.end(error);
      else this.#failed(route, error);
      this.#finished(route, "lost");
    } else {
      route.done.reject(error);
      route.finished.resolve("lost");
    }
  }
}
