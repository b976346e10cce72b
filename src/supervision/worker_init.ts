/**
 * The start of a worker: `init` within `--init-timeout`, and the one line
 * that says why it failed (status pages, NOT_READY answers, the log).
 *
 * @module
 */
import type { InitMessage, ReadyMessage } from "../python/protocol.ts";
import { describeExit, InitFailedError, type WorkerExit } from "../python/worker_process.ts";
import type { ReplicaWorker } from "./replica_worker.ts";

/** Sends `init`; rejects when it fails or when `limitMs` (if any) passes first. */
export function initWithTimeout(
  worker: ReplicaWorker,
  init: Omit<InitMessage, "type">,
  limitMs: number | undefined,
): Promise<ReadyMessage> {
  const ready = worker.init(init);
  if (limitMs === undefined) return ready;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`init did not finish within --init-timeout (${limitMs / 1000} s)`)),
      limitMs,
    );
  });
  return Promise.race([ready, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Why init failed, in one line: the user's error (`init failed: ...`), the
 * worker's exit, or its memory (`oom`, from ./memory_watch.ts).
 */
export function initErrorText(error: unknown, exit: WorkerExit, oom: string | undefined): string {
  if (oom !== undefined) return `Worker ${oom} during init`;
  if (error instanceof InitFailedError) return `${error.phase} failed: ${error.message}`;
  const text = error instanceof Error ? error.message : String(error);
  return text.startsWith("Worker ") ? `Worker ${describeExit(exit)} during init` : text;
}
