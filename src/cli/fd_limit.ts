/**
 * The open-file limit (`RLIMIT_NOFILE`) of this process. Every connection
 * holds a descriptor, so at start the soft limit is raised to the hard
 * limit, as an unprivileged process may. Deno has no call for it, so the
 * server asks the Python interpreter it already checked to set the limit of
 * this process (`resource.prlimit` on our pid, allowed for the same user).
 * Under systemd, `LimitNOFILE=` in the unit sets both limits.
 *
 * @module
 */

/** Soft and hard open-file limits. */
export interface OpenFileLimit {
  readonly soft: number;
  readonly hard: number;
}

const RAISE = `
import resource, sys
pid, hard = int(sys.argv[1]), int(sys.argv[2])
resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
`;

/** The current limits from `/proc/self/limits`; undefined where unreadable (not Linux). */
export async function readOpenFileLimit(path = "/proc/self/limits"): Promise<OpenFileLimit | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  return parseOpenFileLimit(text);
}

/** The "Max open files" line of a `/proc/<pid>/limits` text. */
export function parseOpenFileLimit(text: string): OpenFileLimit | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!match) return undefined;
  const value = (s: string) => s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s);
  return { soft: value(match[1]!), hard: value(match[2]!) };
}

/**
 * Raises the soft limit to the hard limit when it is lower, with `python`.
 * Resolves with the limits in force afterwards (unchanged when the raise
 * failed); undefined where they cannot be read.
 */
export async function raiseOpenFileLimit(python: string): Promise<OpenFileLimit | undefined> {
  const before = await readOpenFileLimit();
  if (before === undefined || before.soft >= before.hard) return before;
  try {
    await new Deno.Command(python, {
      args: ["-c", RAISE, String(Deno.pid), String(before.hard)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      signal: AbortSignal.timeout(5000),
    }).output();
  } catch {
    // The limit stays as it was; the caller logs what is in force.
  }
  return await readOpenFileLimit() ?? before;
}
