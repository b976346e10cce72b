/**
 * Runs a setup command (pip, `dependencies.sh`) with its output streamed to
 * the log line by line, a progress line while it runs, and its last lines
 * kept for the error message when it fails.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { DEFAULT_MAX_LINE_CHARS, readLines } from "./log_lines.ts";

/** Options of {@linkcode runLogged}. */
export interface LoggedRunOptions {
  readonly args: readonly string[];
  readonly cwd: string;
  /** The complete environment of the command (nothing else is inherited). */
  readonly env: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Value of the `stream` field of every output line, e.g. `"pip"`. */
  readonly stream: string;
  /** Logged every `everyMs` while the command runs, with the elapsed seconds. */
  readonly progress?: { readonly message: string; readonly everyMs: number };
  /** How many output lines to keep for {@linkcode LoggedRunResult.lastLines} (default 12). */
  readonly keepLines?: number;
  /** Kills the command when aborted. */
  readonly signal?: AbortSignal;
}

/** How a command run by {@linkcode runLogged} ended. */
export interface LoggedRunResult {
  readonly success: boolean;
  readonly code: number;
  readonly signal: Deno.Signal | null;
  /** The last non-empty output lines, stdout and stderr interleaved as they came. */
  readonly lastLines: readonly string[];
  readonly elapsedMs: number;
}

/**
 * Runs `command` to its end, logging each output line at info level.
 *
 * @param command Program name or path.
 * @param options Arguments, working directory, environment, logger.
 * @throws {Deno.errors.NotFound} When `command` does not exist.
 *
 * @example
 * ```ts
 * const result = await runLogged("bash", { args: ["-e", "dependencies.sh"], cwd, env, logger, stream: "dependencies.sh" });
 * if (!result.success) throw new Error(result.lastLines.join("\n"));
 * ```
 */
export async function runLogged(command: string, options: LoggedRunOptions): Promise<LoggedRunResult> {
  const keep = options.keepLines ?? 12;
  const lastLines: string[] = [];
  const onLine = (line: string) => {
    if (line.trim() === "") return;
    options.logger.info(line, { stream: options.stream });
    lastLines.push(line);
    if (lastLines.length > keep) lastLines.shift();
  };
  const started = Date.now();
  const child = new Deno.Command(command, {
    args: [...options.args],
    cwd: options.cwd,
    env: { ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  }).spawn();
  const progress = options.progress;
  const timer = progress === undefined ? undefined : setInterval(() => {
    options.logger.info(progress.message, { elapsed_s: Math.round((Date.now() - started) / 1000) });
  }, progress.everyMs);
  try {
    const [status] = await Promise.all([
      child.status,
      readLines(child.stdout, onLine, DEFAULT_MAX_LINE_CHARS),
      readLines(child.stderr, onLine, DEFAULT_MAX_LINE_CHARS),
    ]);
    return {
      success: status.success,
      code: status.code,
      signal: status.signal,
      lastLines,
      elapsedMs: Date.now() - started,
    };
  } finally {
    clearInterval(timer);
  }
}
