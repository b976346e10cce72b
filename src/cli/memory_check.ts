/**
 * `compute.mem` keeps Cortex's meaning, a memory request: at startup the
 * server warns when the replicas it starts ask for more than the machine
 * has available. Only `--enforce-mem` turns it into a cap.
 */
import type { ResolvedProject } from "../config/types.ts";

/** What {@linkcode memoryShortfall} found. */
export interface MemoryShortfall {
  /** sum of min_replicas × mem over the APIs that set `compute.mem`. */
  readonly requestedBytes: number;
  readonly availableBytes: number;
  /** `api: 2 × 500Mi`, per API that sets `compute.mem`. */
  readonly requests: readonly string[];
}

/**
 * The memory the APIs request (`min_replicas × compute.mem`, summed) when it
 * is over `availableBytes`; `undefined` when it fits or nothing is requested.
 */
export function memoryShortfall(
  project: Pick<ResolvedProject, "apis">,
  availableBytes: number,
): MemoryShortfall | undefined {
  let requestedBytes = 0;
  const requests: string[] = [];
  for (const api of project.apis) {
    const { memBytes, mem, minReplicas } = api.compute;
    if (memBytes === undefined) continue;
    requestedBytes += minReplicas * memBytes;
    requests.push(`${api.name}: ${minReplicas} × ${mem ?? memBytes}`);
  }
  if (requests.length === 0 || requestedBytes <= availableBytes) return undefined;
  return { requestedBytes, availableBytes, requests };
}

/**
 * `MemAvailable` of `/proc/meminfo` in bytes; `undefined` where it cannot be
 * read (not Linux).
 */
export async function readMemAvailable(meminfo = "/proc/meminfo"): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(meminfo);
  } catch {
    return undefined;
  }
  return parseMemAvailable(text);
}

/** Parses the `MemAvailable:   123456 kB` line of /proc/meminfo into bytes. */
export function parseMemAvailable(text: string): number | undefined {
  const match = /^MemAvailable:\s+(\d+)\s*kB\s*$/m.exec(text);
  return match === null ? undefined : Number(match[1]) * 1024;
}
