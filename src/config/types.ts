/**
 * Resolved configuration types: every field set, defaults applied.
 *
 * `loadProjectConfig` (./load.ts) turns a user's loose `cortex.yaml` into
 * these types; everything downstream (staging, workers, server) reads only
 * these.
 */

/** The Cortex tracker: how predictions are counted in metrics. */
export interface ResolvedTracker {
  /** Field of a dict prediction to track; `undefined` tracks the whole prediction. */
  readonly key: string | undefined;
  readonly modelType: "classification" | "regression";
}

/** `compute:` of an API, with defaults applied. */
export interface ResolvedCompute {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly initReplicas: number;
  /** CPU request in cores (informational only), `undefined` when not set. */
  readonly cpu: number | undefined;
  /**
   * Memory request per worker in bytes, `undefined` when not set. As in
   * Cortex a request, not a limit: a cap only with `serve --enforce-mem`.
   */
  readonly memBytes: number | undefined;
  /** The quantity as written (`"500Mi"`), for messages. */
  readonly mem: string | undefined;
  /** Number of GPUs per replica (0 when not set). */
  readonly gpu: number;
}

/**
 * The shape of a `cortex.yaml`, detected from the file itself:
 * - `python`: `kind: api` with `python.inference`, `init(metadata)`
 * - `0.11`: Cortex 0.10/0.11, `kind: api` with `predictor: {path, model, ...}`, `init(model_path, metadata)`
 * - `0.12`: Cortex 0.12, `predictor: {type: python, path, config, ...}`, `class PythonPredictor`
 * - `0.13`: Cortex 0.13-0.16, a plain list of APIs without `kind` and without deployment
 * - `0.17`: Cortex 0.17-0.18, the same list with `networking`, `monitoring` or
 *   `processes_per_replica` (payload by Content-Type, `predict` arguments by name)
 * - `0.19`: Cortex 0.19-0.35, a list of `kind: RealtimeAPI` / `TrafficSplitter` resources
 */
export type Dialect = "python" | "0.11" | "0.12" | "0.13" | "0.17" | "0.19";

/** How the worker calls the user's code. */
export type PythonInterface =
  /** Module functions `init(metadata)` (optional) and `predict(sample, metadata)`. */
  | "init_metadata"
  /** Module functions `init(model_path, metadata)` (optional) and `predict(sample, metadata)`. */
  | "init_model_path"
  /** `class PythonPredictor` with `__init__(self, config)` and `predict(self, payload)`. */
  | "python_predictor"
  /**
   * Cortex 0.17+: `class PythonPredictor`, `predict`'s optional arguments
   * (`query_params`, `headers`) passed by name, the payload parsed by
   * Content-Type and the answer's type choosing its Content-Type (see
   * docs/dialects-realtime.md).
   */
  | "realtime_predictor"
  /**
   * Cortex 0.34-0.35: `handler:` and `class Handler` with `handle_post`, as
   * `realtime_predictor` otherwise; `handle_post` may return `(result, callback)`.
   */
  | "realtime_handler";

/** True for the interfaces whose payload is parsed by Content-Type (Cortex 0.17+). */
export function parsesByContentType(pythonInterface: PythonInterface): boolean {
  return pythonInterface === "realtime_predictor" || pythonInterface === "realtime_handler";
}

/** `predictor.model` (Cortex 0.10/0.11): where the model is. */
export type ResolvedModel =
  /** A path inside the project, relative to its root (POSIX). */
  | { readonly kind: "project"; readonly path: string }
  /** An absolute path on this machine (written as a path or a `file://` URL). */
  | { readonly kind: "local"; readonly path: string }
  /** An S3 object or prefix, downloaded by the worker before `init`. */
  | { readonly kind: "s3"; readonly url: string };

/** A field accepted for compatibility that has no effect on one machine. */
export interface IgnoredField {
  readonly resource: string | undefined;
  /** Dotted key path, e.g. `autoscaling.window`. */
  readonly path: string;
  readonly line: number;
  readonly column: number;
  /** Why it has no effect. */
  readonly reason: string;
}

/**
 * `server_side_batching:` of an API: requests are grouped into one `predict`
 * call of up to `maxBatchSize` samples, waiting at most `batchIntervalMs`
 * after the first of them arrived.
 */
export interface ResolvedBatching {
  /** 2-1024. */
  readonly maxBatchSize: number;
  /** Above 0, at most 10 000. */
  readonly batchIntervalMs: number;
}

/** One API resource. */
export interface ResolvedApi {
  readonly name: string;
  /** Inference file, relative to the project root, POSIX separators, no `..`. */
  readonly inference: string;
  /** Extra environment variables for the worker (`python.env`, `predictor.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** `metadata`, or `predictor.config` for a `PythonPredictor`. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** How the worker calls the inference file. */
  readonly pythonInterface: PythonInterface;
  /** `predictor.model`; `undefined` when not set. */
  readonly model: ResolvedModel | undefined;
  /** `predictor.python_path`, relative to the root; `undefined` when not set. */
  readonly pythonPath: string | undefined;
  /** Always starts with `/`, no trailing slash. */
  readonly endpoint: string;
  readonly tracker: ResolvedTracker | undefined;
  readonly compute: ResolvedCompute;
  /**
   * Server-side batching (`server_side_batching`, or `predictor.server_side_batching`
   * in the predictor dialects); `undefined` when off (one request per `predict` call).
   */
  readonly batching: ResolvedBatching | undefined;
  /** Predictions are submitted as durable jobs (202 + id), see docs/async.md */
  readonly async?: boolean;
  /** `multi_model_reloading` / `models` (Cortex 0.22+): models served through `python_client`. */
  readonly models?: ResolvedModels | undefined;
}

/** One model of a multi-model API: a directory of numbered versions (or one unversioned model). */
export interface ResolvedModelSource {
  /** The name `get_model` takes; `""` for the single `path` form. */
  readonly name: string;
  readonly location: ResolvedModel;
}

/** `multi_model_reloading` (Cortex 0.25+) or `models` (0.22-0.24) of a PythonPredictor. */
export interface ResolvedModels {
  /** `path`/`paths`: the models by name; `dir`: `undefined`. */
  readonly sources: readonly ResolvedModelSource[] | undefined;
  /** `dir`: each top-level folder is a model. */
  readonly dir: ResolvedModel | undefined;
  /** Models kept loaded in memory (LRU); `undefined` keeps every model. */
  readonly cacheSize: number | undefined;
  /** Model versions kept on disk (LRU, downloaded ones only); `undefined` keeps every one. */
  readonly diskCacheSize: number | undefined;
}

/** One API behind a `TrafficSplitter`, with its share of the traffic. */
export interface ResolvedSplitTarget {
  readonly api: string;
  /** 0-100; the weights of a splitter's non-shadow APIs sum to 100. */
  readonly weight: number;
  /**
   * `shadow: true` (Cortex 0.31+): gets a mirrored copy of `weight` percent of
   * the requests, whose answers are dropped; at most one per splitter.
   */
  readonly shadow?: boolean;
}

/** `kind: TrafficSplitter` (Cortex 0.19+): one endpoint that routes each request to one API by weight. */
export interface ResolvedSplitter {
  readonly name: string;
  /** Always starts with `/`, no trailing slash. */
  readonly endpoint: string;
  readonly apis: readonly ResolvedSplitTarget[];
}

/** The whole `cortex.yaml`: one deployment and its APIs. */
export interface ResolvedProject {
  /** The dialect the file is written in. */
  readonly dialect: Dialect;
  /** Fields accepted and ignored, in source order, to report once. */
  readonly ignored: readonly IgnoredField[];
  /** Absolute path of the project root (the directory holding `cortex.yaml`). */
  readonly root: string;
  /** Absolute path of the config file. */
  readonly configPath: string;
  readonly deployment: {
    /** The deployment's name; for Cortex 0.13 (no deployment) the project directory's name. */
    readonly name: string;
    /** Relative to the project root, POSIX separators; `undefined` when not set. */
    readonly pythonRoot: string | undefined;
  };
  readonly apis: readonly ResolvedApi[];
  /** `kind: TrafficSplitter` resources (Cortex 0.19+); absent or empty when none. */
  readonly splitters?: readonly ResolvedSplitter[];
}
