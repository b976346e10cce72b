/**
 * Test helper: runs the `cortex-serve` command line as a subprocess.
 */
import { CLI, ROOT } from "./_helpers.ts";

/** What a command printed and how it exited. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link runCli}. */
export interface CliOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** Sent on stdin (stdin is closed otherwise). */
  readonly stdin?: string;
}

/** Runs `cortex-serve ARGS` (main.ts under `deno run`) and collects its output. */
export async function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI,
      ...args,
    ],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}
