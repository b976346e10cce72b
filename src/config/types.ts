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
 * - `0.11`: Cortex 0.10/0.11, `kind: api` with `predictor: {path, model, …}`, `init(model_path, metadata)`
 * - `0.12`: Cortex 0.12, `predictor: {type: python, path, config, …}`, `class PythonPredictor`
 * - `0.13`: Cortex 0.13, a plain list of APIs without `kind` and without deployment
 */
export type Dialect = "python" | "0.11" | "0.12" | "0.13";

/** How the worker calls the user's code. */
export type PythonInterface =
  /** Module functions `init(metadata)` (optional) and `predict(sample, metadata)`. */
  | "init_metadata"
  /** Module functions `init(model_path, metadata)` (optional) and `predict(sample, metadata)`. */
  | "init_model_path"
  /** `class PythonPredictor` with `__init__(self, config)` and `predict(self, payload)`. */
  | "python_predictor";

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
  /** 2–1024. */
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
}
