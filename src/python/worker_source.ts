/**
 * The worker program, part of the binary: imported as text so nothing is
 * read from the source tree at run time, and written to the state directory
 * at startup.
 */
import source from "./worker.py" with { type: "text" };
import { join } from "node:path";

/** The worker's Python source. */
export const WORKER_SOURCE: string = source;

/**
 * Writes worker.py into `stateDir` (owner-only) unless an identical copy is
 * there, and returns its path.
 */
export async function writeWorker(stateDir: string): Promise<string> {
  const path = join(stateDir, "worker.py");
  try {
    if ((await Deno.readTextFile(path)) === WORKER_SOURCE) return path;
  } catch {
    // Not there yet.
  }
  const temp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(temp, WORKER_SOURCE, { mode: 0o600 });
  await Deno.rename(temp, path);
  return path;
}
