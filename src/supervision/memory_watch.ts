/**
 * The memory cap of a worker (`compute.mem` with `--enforce-mem`): its
 * resident memory, read from /proc (Linux), sampled every
 * {@link RSS_POLL_MS}; over the cap, the worker is killed at once.
 *
 * @module
 */
import type { ReplicaWorker } from "./replica_worker.ts";

/** How often a worker's RSS is read. */
export const RSS_POLL_MS = 200;

/** RSS of `pid` in bytes, or undefined when the process is gone or /proc is unavailable. */
export async function readRssBytes(pid: number): Promise<number | undefined> {
  let status: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

/** What {@link watchMemory} needs. */
export interface MemoryCap {
  /** The cap in bytes. */
  readonly bytes: number;
  /** The cap as the user wrote it (`compute.mem`), for messages. */
  readonly text: string | undefined;
  /** Reads a process's RSS in bytes; default {@link readRssBytes}. */
  readonly readRss?: ((pid: number) => Promise<number | undefined>) | undefined;
  /**
   * Called once when the worker went over the cap, just before it is
   * killed, with the reason (`used 900 MiB, over compute.mem 512Mi, and was
   * killed (out of memory)`) and the RSS read.
   */
  readonly onOver: (reason: string, rssBytes: number) => void;
}

/**
 * Samples `worker`'s RSS, one read at a time, and SIGKILLs it when over the
 * cap. Returns the function that stops watching.
 */
export function watchMemory(worker: ReplicaWorker, cap: MemoryCap): () => void {
  const readRss = cap.readRss ?? readRssBytes;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const sample = async () => {
    const rss = await readRss(worker.pid).catch(() => undefined);
    if (stopped) return;
    if (rss !== undefined && rss > cap.bytes) {
      cap.onOver(
        `used ${mib(rss)} MiB, over compute.mem ${
          cap.text ?? mib(cap.bytes) + " MiB"
        }, and was killed (out of memory)`,
        rss,
      );
      worker.kill("SIGKILL");
      return;
    }
    timer = setTimeout(sample, RSS_POLL_MS);
  };
  timer = setTimeout(sample, RSS_POLL_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(0);
}
