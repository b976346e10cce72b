/**
 * Test helpers: temporary projects, a real server as a child process, and a
 * check that no worker outlived its server.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Interpreter for tests: $CORTEX_TEST_PYTHON, else Debian's (has msgpack/numpy), else python3. */
export const PYTHON = Deno.env.get("CORTEX_TEST_PYTHON") ??
  (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** Makes a temporary directory; use with `await using`. */
export async function tempDir(prefix = "cortex-serve-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** A single-API `cortex.yaml` for tests; `extra` is appended to the api resource. */
export function singleApiConfig(extra = ""): string {
  return `- kind: deployment
  name: test
- kind: api
  name: api
  python:
    inference: inference.py
${extra}`;
}

/**
 * Writes `files` (relative path → content) into a new temp project. When
 * no `cortex.yaml` is given, {@link singleApiConfig} is used.
 */
export async function makeProject(files: Readonly<Record<string, string>>): Promise<TempDir> {
  const dir = await tempDir("cortex-serve-project-");
  const all = { "cortex.yaml": singleApiConfig(), ...files };
  for (const [path, content] of Object.entries(all)) {
    const full = join(dir.path, path);
    await Deno.mkdir(dirname(full), { recursive: true });
    await Deno.writeTextFile(full, content);
  }
  return dir;
}

/** A server started as a child process. */
export interface ServerProcess extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly pid: number;
  readonly stateDir: string;
  /** Every stderr line so far (JSON log records where parseable). */
  readonly lines: string[];
  /** Resolves with the first log record that `match` accepts. */
  waitFor(match: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Sends a signal to the server process. */
  kill(signal: Deno.Signal): void;
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the server process has exited (and the runtime has seen it). */
  readonly exited: boolean;
}

/** One parsed `--log-format json` line. */
export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

/** Options for {@link startServer}. */
export interface StartOptions {
  readonly args?: readonly string[];
  /** Wait for every API to be ready (default true). */
  readonly waitReady?: boolean;
  /** With `waitReady`, also wait until this many workers are ready (multi-replica tests). */
  readonly replicas?: number;
  /** Program to run instead of main.ts (e.g. a bundle). */
  readonly entry?: string;
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** A command that execs the server, e.g. `["prlimit", "--nofile=256:256", "--"]`. */
  readonly wrap?: readonly string[];
  /** V8 flags for the server's Deno, e.g. `["--trace-gc-nvp"]` (its stdout is in `lines`). */
  readonly v8Flags?: readonly string[];
}

const DENO = Deno.execPath();

/**
 * The V8 flags cortex-serve is deployed with: `deno task compile` builds them
 * into the binary; `deno task serve`, scripts/serve-example, the bundle's
 * command in docs/development.md and the benchmark pass them
 * (tests/v8_flags_test.ts keeps those in step; why each: docs/performance.md).
 */
export const DEPLOYED_V8_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--no-maglev"];

/** `deno run` arguments that start `cortex-serve` from this checkout; append the subcommand. */
export const CLI: readonly string[] = [
  "run",
  "--allow-all",
  "--frozen",
  `--config=${join(ROOT, "deno.json")}`,
  join(ROOT, "main.ts"),
];

/**
 * Starts `cortex-serve serve DIR` on a free port with JSON logs and its own
 * state dir; resolves once it listens (and by default once APIs are ready).
 * On dispose it sends SIGTERM, waits, prints output if the test failed, and
 * removes the state dir.
 */
export async function startServer(projectDir: string, options: StartOptions = {}): Promise<ServerProcess> {
  const state = await tempDir("cortex-serve-state-");
  const [command = DENO, ...wrapArgs] = options.wrap === undefined ? [] : [...options.wrap, DENO];
  const child = new Deno.Command(command, {
    args: [
      ...wrapArgs,
      ...(options.entry === undefined
        ? CLI
        : ["run", "--allow-all", "--unstable-no-legacy-abort", options.entry]).flatMap((arg, i) =>
          i === 0 && options.v8Flags !== undefined ? [arg, `--v8-flags=${options.v8Flags.join(",")}`] : [arg]
        ),
      "serve",
      projectDir,
      "--port=0",
      `--state-dir=${state.path}`,
      `--python=${PYTHON}`,
      "--log-format=json",
      ...(options.args ?? []),
    ],
    cwd: options.cwd ?? ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env ?? {},
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<{ match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }>();
  const onLine = (line: string) => {
    lines.push(line);
    let record: LogRecord;
    try {
      record = JSON.parse(line);
    } catch {
      record = { msg: line };
    }
    for (const waiter of waiters) {
      if (waiter.match(record)) {
        waiters.delete(waiter);
        waiter.resolve(record);
      }
    }
  };
  const reading = Promise.all([pump(child.stderr, onLine), pump(child.stdout, onLine)]);
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await reading;
    return s;
  });
  const waitFor = (match: (r: LogRecord) => boolean, timeoutMs = 20_000): Promise<LogRecord> => {
    for (const line of lines) {
      try {
        const record = JSON.parse(line) as LogRecord;
        if (match(record)) return Promise.resolve(record);
      } catch {
        // Not JSON.
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (r: LogRecord) => (clearTimeout(timer), resolve(r)) };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`No matching log line within ${timeoutMs} ms:\n${lines.join("\n")}`));
      }, timeoutMs);
      waiters.add(waiter);
      status.then(() => {
        if (!waiters.has(waiter)) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`Server exited before the expected log line:\n${lines.join("\n")}`));
      });
    });
  };
  const server: ServerProcess = {
    url: "",
    pid: child.pid,
    stateDir: state.path,
    lines,
    waitFor,
    kill: (signal) => {
      try {
        child.kill(signal);
      } catch {
        // Gone already.
      }
    },
    status,
    get exited() {
      return exited;
    },
    async [Symbol.asyncDispose]() {
      server.kill("SIGTERM");
      const timer = setTimeout(() => server.kill("SIGKILL"), 15_000);
      await status;
      clearTimeout(timer);
      await state[Symbol.asyncDispose]();
    },
  };
  try {
    const listening = await waitFor((r) => r.msg === "listening");
    (server as { url: string }).url = String(listening.url);
    if (options.waitReady ?? true) await waitUntilReady(server, options.replicas);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
  return server;
}

/**
 * Asserts the server process is still running: it answers `GET /livez` (a
 * dead server refuses the connection) and its exit has not been seen.
 */
export async function assertServerRunning(server: ServerProcess): Promise<void> {
  let live: Response;
  try {
    live = await fetch(`${server.url}/livez`);
  } catch (error) {
    throw new Error(`The server does not answer /livez (exited: ${server.exited}): ${error}`);
  }
  await live.body?.cancel();
  if (live.status !== 200) throw new Error(`GET /livez answered ${live.status}`);
  if (server.exited) throw new Error("The server process exited");
}

/** Waits for the server's "every api is ready" line, and for `replicas` "worker ready" lines. */
async function waitUntilReady(server: ServerProcess, replicas = 1, timeoutMs = 30_000): Promise<void> {
  await server.waitFor((r) => r.msg === "every api is ready", timeoutMs);
  let ready = 0;
  await server.waitFor((r) => r.msg === "worker ready" && ++ready >= replicas, timeoutMs);
}

async function pump(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    const parts = rest.split("\n");
    rest = parts.pop() ?? "";
    parts.forEach(onLine);
  }
  if (rest) onLine(rest);
}

/** Sleeps `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** POSTs `body` (a string is sent as is, anything else as JSON). */
export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** PIDs of live processes whose command line contains `needle`. */
export async function processesMatching(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "Z" && cmdline.includes(needle)) pids.push(Number(entry.name));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

/** Waits until no worker of this server's state dir is alive; throws otherwise. */
export async function assertNoWorkersLeft(stateDir: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let left: number[] = [];
  while (Date.now() < deadline) {
    left = await processesMatching(join(stateDir, "worker.py"));
    if (left.length === 0) return;
    await delay(50);
  }
  throw new Error(`Worker processes left behind: ${left.join(", ")}`);
}
