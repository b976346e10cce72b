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
  /** Memory cap per worker in bytes, `undefined` when not set. */
  readonly memBytes: number | undefined;
  /** The quantity as written (`"500Mi"`), for messages. */
  readonly mem: string | undefined;
  /** Number of GPUs per replica (0 when not set). */
  readonly gpu: number;
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

/** One `kind: api` resource. */
export interface ResolvedApi {
  readonly name: string;
  /** Inference file, relative to the project root, POSIX separators, no `..`. */
  readonly inference: string;
  /** Extra environment variables for the worker (`python.env`). */
  readonly env: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Always starts with `/`, no trailing slash. */
  readonly endpoint: string;
  readonly tracker: ResolvedTracker | undefined;
  readonly compute: ResolvedCompute;
  /** Server-side batching; `undefined` when off (one request per `predict` call). */
  readonly batching: ResolvedBatching | undefined;
}

/** The whole `cortex.yaml`: one deployment and its APIs. */
export interface ResolvedProject {
  /** Absolute path of the project root (the directory holding `cortex.yaml`). */
  readonly root: string;
  /** Absolute path of the config file. */
  readonly configPath: string;
  readonly deployment: {
    readonly name: string;
    /** Relative to the project root, POSIX separators; `undefined` when not set. */
    readonly pythonRoot: string | undefined;
  };
  readonly apis: readonly ResolvedApi[];
}
