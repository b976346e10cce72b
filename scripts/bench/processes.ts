/**
 * The processes a benchmark starts: spawned with their output in a log
 * file, stopped with SIGTERM then SIGKILL, and all of them stopped at the
 * end. Also reads resident memory from /proc.
 */

/** Options of {@link Processes.spawn}. */
export interface SpawnOptions {
  readonly env?: Record<string, string>;
  /** File that receives the process's stderr (its stdout is discarded). */
  readonly log: string;
  /** Where stdout goes (e.g. V8's `--trace-gc` lines); discarded when absent. */
  readonly stdoutLog?: string;
}

/** Peak RSS of a run, in KiB. */
export interface RssPeak {
  readonly serverKiB: number;
  readonly totalKiB: number;
}

const KILL_GRACE_MS = 5000;

/** Every child started by the benchmark. */
export class Processes {
  readonly #children = new Set<Deno.ChildProcess>();

  /** Starts `cmd`, its stderr appended to `options.log` (and its stdout to `options.stdoutLog`, if given). */
  async spawn(cmd: string, args: string[], options: SpawnOptions): Promise<Deno.ChildProcess> {
    const file = await Deno.open(options.log, { create: true, append: true });
    const out = options.stdoutLog === undefined
      ? undefined
      : await Deno.open(options.stdoutLog, { create: true, append: true });
    const child = new Deno.Command(cmd, {
      args,
      env: options.env ?? {},
      stdin: "null",
      stdout: out === undefined ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    // A server whose log is not drained blocks on its next write.
    child.stderr.pipeTo(file.writable).catch(() => {});
    if (out !== undefined) child.stdout.pipeTo(out.writable).catch(() => {});
    return child;
  }

  /** True when `child` has exited. */
  async exited(child: Deno.ChildProcess): Promise<boolean> {
    return await Promise.race([child.status.then(() => true), Promise.resolve(false)]);
  }

  /** SIGTERM, then SIGKILL after a grace period; waits for the exit. */
  async stop(child: Deno.ChildProcess): Promise<void> {
    signal(child, "SIGTERM");
    const timer = setTimeout(() => signal(child, "SIGKILL"), KILL_GRACE_MS);
    await child.status;
    clearTimeout(timer);
    this.#children.delete(child);
  }

  /** Stops every child still running. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#children].map((child) => this.stop(child)));
  }

  /**
   * Measures the peak RSS of `pid` (and of its process tree) over a run. The
   * kernel keeps each process's peak (VmHWM); it is reset here at the start
   * (`clear_refs` 5) and read at `stop`, so nothing runs beside the server
   * while it is measured: sampling /proc every 100 ms took a share of the two
   * cores and added 0.2-0.35 ms to the 1-client p99 of a server with a worker.
   * The tree's peak is the sum of its processes' peaks (a process started
   * during the run counts with its own). Where the reset is refused, samples
   * every 100 ms instead.
   */
  async peakRss(pid: number): Promise<{ stop: () => Promise<RssPeak> }> {
    const reset = await Promise.all([pid, ...await descendants(pid)].map(resetPeak));
    if (reset.every((ok) => ok)) {
      return {
        stop: async () => {
          const peaks = await Promise.all([pid, ...await descendants(pid)].map(peakKiB));
          return { serverKiB: peaks[0]!, totalKiB: peaks.reduce((sum, kib) => sum + kib, 0) };
        },
      };
    }
    let serverKiB = 0;
    let totalKiB = 0;
    const timer = setInterval(async () => {
      serverKiB = Math.max(serverKiB, await rssKiB(pid, false));
      totalKiB = Math.max(totalKiB, await rssKiB(pid, true));
    }, 100);
    return {
      stop: () => {
        clearInterval(timer);
        return Promise.resolve({ serverKiB, totalKiB });
      },
    };
  }
}

/** Resets the kernel's peak RSS of `pid` to its current RSS; false where refused. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The kernel's peak RSS of `pid` in KiB (0 once it has exited). */
async function peakKiB(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return Number(status.match(/VmHWM:\s+(\d+)/)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch {
    // Already gone.
  }
}

/** The pids of `pid`'s descendants. */
async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    try {
      for await (const task of Deno.readDir(`/proc/${next}/task`)) {
        const text = await Deno.readTextFile(`/proc/${next}/task/${task.name}/children`);
        const children = text.split(" ").filter((s) => s !== "").map(Number);
        found.push(...children);
        pending.push(...children);
      }
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/** CPU time (user + system) used so far, in seconds: of `pid` itself, and of its descendants. */
export async function cpuSeconds(pid: number): Promise<{ readonly own: number; readonly children: number }> {
  const ticks = async (p: number) => {
    try {
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const stat = await Deno.readTextFile(`/proc/${p}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  const hz = 100; // USER_HZ on Linux
  let children = 0;
  for (const child of await descendants(pid)) children += await ticks(child);
  return { own: (await ticks(pid)) / hz, children: children / hz };
}

/** Resident memory of `pid` in KiB, with all its descendants when `tree`. */
export async function rssKiB(pid: number, tree: boolean): Promise<number> {
  let total = 0;
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    try {
      const status = await Deno.readTextFile(`/proc/${next}/status`);
      total += Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
      if (!tree) break;
      for await (const task of Deno.readDir(`/proc/${next}/task`)) {
        const children = await Deno.readTextFile(`/proc/${next}/task/${task.name}/children`);
        pending.push(...children.split(" ").filter((s) => s !== "").map(Number));
      }
    } catch {
      // Exited while we looked.
    }
  }
  return total;
}
