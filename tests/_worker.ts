/** Spawns the real worker.py on a user inference file and drives it over its channel. */
import { join } from "node:path";
import { type BatchOutcome, WorkerProcess } from "../src/python/worker_process.ts";
import { writeWorker } from "../src/python/worker_source.ts";
import { type InitMessage, PROTOCOL_VERSION } from "../src/python/protocol.ts";
import { PYTHON, tempDir } from "./_helpers.ts";

/** A ready worker, its log lines and its project directory; kills it on dispose. */
export interface TestWorker extends AsyncDisposable {
  readonly worker: WorkerProcess;
  readonly dir: string;
  readonly lines: string[];
}

/**
 * Starts a worker on `inference` (Python source) with `stream_window`
 * `window`; resolves once ready. `program` replaces worker.py (a rogue worker).
 */
export async function startWorker(inference: string, window = 4, program?: string): Promise<TestWorker> {
  const dir = await tempDir("cortex-serve-worker-");
  await Deno.writeTextFile(join(dir.path, "inference.py"), inference);
  const workerPath = program ?? await writeWorker(dir.path);
  const lines: string[] = [];
  const worker = spawnWorker(dir.path, workerPath, lines);
  const dispose = async () => {
    worker.kill("SIGKILL");
    await worker.exited;
    await dir[Symbol.asyncDispose]();
  };
  try {
    await worker.init(initFields(dir.path, { stream_window: window }));
  } catch (error) {
    await dispose();
    throw new Error(`${error}\n${lines.join("\n")}`);
  }
  return { worker, dir: dir.path, lines, [Symbol.asyncDispose]: dispose };
}

/** Spawns `workerPath` in project `dir` (1 MiB frames); its log lines go to `lines`. Not yet initialised. */
export function spawnWorker(dir: string, workerPath: string, lines: string[]): WorkerProcess {
  return WorkerProcess.spawn({
    python: PYTHON,
    workerPath,
    cwd: dir,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    maxFrameBytes: 1 << 20,
    onLog: (line) => lines.push(line),
  });
}

/** The fields of `init` for `inference.py` in project `dir`; `overrides` replaces any of them. */
export function initFields(
  dir: string,
  overrides: Partial<Omit<InitMessage, "type">> = {},
): Omit<InitMessage, "type"> {
  return {
    protocol: PROTOCOL_VERSION,
    api: "api",
    inference: join(dir, "inference.py"),
    metadata: {},
    python_root: null,
    project_dir: dir,
    interface: "init_metadata",
    model: null,
    model_dir: null,
    stream_window: 4,
    ...overrides,
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A sample as request bytes. */
export function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Parses JSON bytes. */
export function parse(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes));
}

/**
 * Runs one prediction and resolves with its JSON; a streamed answer is
 * collected into a JSON array of its items. Rejects with
 * PredictFailedError, WorkerExitedError or ProtocolError.
 */
export async function predict(
  worker: WorkerProcess,
  sample: Uint8Array,
  debug: boolean,
): Promise<Uint8Array> {
  const answer = await worker.run(sample, debug).answer;
  if (answer.type === "body") return answer.body;
  const items: string[] = [];
  for await (const item of answer.stream) items.push(decoder.decode(item));
  return encoder.encode(`[${items.join(",")}]`);
}

/**
 * Runs one batch: resolves with one outcome per sample, in order (a
 * request's PredictFailedError is its outcome, not a rejection). Rejects
 * with WorkerExitedError or ProtocolError when the worker died or broke
 * the protocol before answering every sample.
 */
export function predictBatch(
  worker: WorkerProcess,
  samples: readonly Uint8Array[],
  debug: boolean,
): Promise<BatchOutcome[]> {
  return worker.runBatch(samples, debug).outcomes;
}

/** Resolves with `promise`'s value, or "timeout" after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
