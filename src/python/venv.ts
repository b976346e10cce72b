/**
 * The cached virtual environment of a project's `requirements.txt`.
 *
 * Layout under the state directory:
 * `venvs/<key>/` a complete environment, `venvs/<key>.lock` the lock that
 * serialises builders of one key, `venvs/<key>.tmp-*` an environment being
 * built. The key is a hash of the interpreter (path and version) and the
 * content of `requirements.txt`. An environment is built under its temporary
 * name and renamed only when `pip install` succeeded, so a half-built one is
 * never reused; servers starting at the same time wait on the lock and then
 * reuse what the first one built.
 *
 * @module
 */
import * as path from "node:path";
import type { Logger } from "../log/logger.ts";
import { sha256Hex } from "../project/hash.ts";
import { outputTail, PythonEnvError } from "./environment_error.ts";
import { checkInterpreter, type Interpreter, InterpreterError } from "./interpreter.ts";
import { runLogged } from "./run_logged.ts";
import { inheritBaseSite } from "./venv_base_site.ts";
import { relocateVenv } from "./venv_relocate.ts";

/** Options of {@linkcode ensureVenv}. */
export interface VenvOptions {
  /** The checked base interpreter; the environment sees its site-packages. */
  readonly interpreter: Interpreter;
  /** Path of `requirements.txt` (in the staged project). */
  readonly requirements: string;
  /** Working directory of pip, so relative paths in requirements.txt resolve against the project. */
  readonly cwd: string;
  readonly stateDir: string;
  /** The server's environment, given to pip unchanged (PIP_*, proxies, HOME for pip.conf). */
  readonly env: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** How often to log that pip is still running (default 15 s). */
  readonly progressMs?: number;
  readonly signal?: AbortSignal;
}

/** A ready virtual environment. */
export interface Venv {
  /** The environment's directory. */
  readonly dir: string;
  /** Its checked interpreter: what workers run. */
  readonly interpreter: Interpreter;
  /** True when it was in the cache and pip did not run. */
  readonly reused: boolean;
}

const _MARKER = "cortex-serve-env.json";
const _KEY_VERSION = 1;
const _WAIT_NOTICE_MS = 1000;

/** The cache key of an environment: 16 hex characters. */
export function venvKey(interpreter: Interpreter, requirements: string): string {
  return sha256Hex(JSON.stringify({
    version: _KEY_VERSION,
    executable: interpreter.executable,
    python: interpreter.version,
    requirements,
  })).slice(0, 16);
}

/**
 * Returns the cached environment for (interpreter, requirements.txt), building
 * it first when missing.
 *
 * @throws {PythonEnvError} When the environment cannot be created or pip fails.
 */
export async function ensureVenv(options: VenvOptions): Promise<Venv> {
  const requirements = await Deno.readTextFile(options.requirements);
  const root = path.join(options.stateDir, "venvs");
  const key = venvKey(options.interpreter, requirements);
  const dir = path.join(root, key);
  const cached = await _reuse(dir);
  if (cached !== undefined) return { dir, interpreter: cached, reused: true };

  await _mkdirPrivate(root);
  using _held = await _lock(path.join(root, `${key}.lock`), options.logger);
  const built = await _reuse(dir);
  if (built !== undefined) return { dir, interpreter: built, reused: true };
  await _removeStale(root, key, dir);

  const temp = path.join(root, `${key}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  try {
    const interpreter = await _build(temp, dir, requirements, options);
    await Deno.rename(temp, dir);
    return {
      dir,
      interpreter: { ...interpreter, executable: path.join(dir, "bin", "python") },
      reused: false,
    };
  } finally {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
  }
}

/** The environment's checked interpreter when `dir` is complete and works. */
async function _reuse(dir: string): Promise<Interpreter | undefined> {
  try {
    await Deno.lstat(path.join(dir, _MARKER));
  } catch {
    return undefined;
  }
  try {
    return await checkInterpreter(path.join(dir, "bin", "python"));
  } catch (error) {
    // The base interpreter moved or broke: build the environment again.
    if (error instanceof InterpreterError) return undefined;
    throw error;
  }
}

async function _build(
  temp: string,
  dir: string,
  requirements: string,
  options: VenvOptions,
): Promise<Interpreter> {
  const { logger, interpreter } = options;
  logger.info("creating python environment", { dir, python: interpreter.executable });
  const created = await new Deno.Command(interpreter.executable, {
    args: ["-m", "venv", "--system-site-packages", "--without-pip", temp],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!created.success) {
    throw new PythonEnvError(
      "VENV_CREATE_FAILED",
      `Cannot create a virtual environment with Python ${interpreter.version} at ${interpreter.executable}: ` +
        "install the venv module (apt-get install python3-venv on Debian/Ubuntu) or choose another --python; " +
        `its last lines:${outputTail(_lines(created.stderr))}`,
    );
  }
  const python = path.join(temp, "bin", "python");
  const inherited = await inheritBaseSite(interpreter.executable, python);
  if (inherited.length > 0) {
    logger.info("the environment also sees the site-packages of the interpreter's own virtual environment", {
      site: inherited,
    });
  }
  await _ensurePip(python, interpreter);

  logger.info("installing requirements.txt: pip output follows; this can take minutes", {
    requirements: options.requirements,
  });
  const result = await runLogged(python, {
    args: [
      "-m",
      "pip",
      "install",
      "--no-input",
      "--disable-pip-version-check",
      "--progress-bar=off",
      "-r",
      options.requirements,
    ],
    cwd: options.cwd,
    env: { ...options.env, PYTHONUNBUFFERED: "1" },
    logger,
    stream: "pip",
    progress: { message: "still installing requirements.txt", everyMs: options.progressMs ?? 15_000 },
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  if (!result.success) {
    throw new PythonEnvError(
      "PIP_INSTALL_FAILED",
      `Installing requirements.txt failed (pip exited with ${result.signal ?? `code ${result.code}`}): ` +
        "fix requirements.txt or pip's settings (PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf) and start again; " +
        `pip's last lines:${outputTail(result.lastLines)}`,
    );
  }
  await Deno.writeTextFile(path.join(temp, "requirements.txt"), requirements, { mode: 0o600 });
  await relocateVenv(temp, dir);
  const checked = await checkInterpreter(python);
  await Deno.writeTextFile(
    path.join(temp, _MARKER),
    JSON.stringify({
      python: interpreter.executable,
      version: interpreter.version,
      created: new Date().toISOString(),
      pip_seconds: Math.round(result.elapsedMs / 100) / 10,
    }) + "\n",
    { mode: 0o600 },
  );
  return checked;
}

/** Makes sure `python -m pip` works: the base interpreter's pip, else ensurepip. */
async function _ensurePip(python: string, interpreter: Interpreter): Promise<void> {
  const probe = await _output(python, ["-m", "pip", "--version"]);
  if (probe.success) return;
  const ensure = await _output(python, ["-m", "ensurepip", "--default-pip"]);
  if (ensure.success) return;
  throw new PythonEnvError(
    "PIP_UNAVAILABLE",
    `Python ${interpreter.version} at ${interpreter.executable} has no pip to install requirements.txt with: ` +
      "install it with `apt-get install python3-pip python3-venv` (Debian/Ubuntu), or choose another --python; " +
      `ensurepip's last lines:${outputTail(_lines(ensure.stderr))}`,
  );
}

function _output(command: string, args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
}

/** Takes the builders' lock of one key; logs when another server holds it. */
async function _lock(file: string, logger: Logger): Promise<Disposable> {
  const handle = await Deno.open(file, { create: true, write: true, mode: 0o600 });
  const notice = setTimeout(() => {
    logger.info("waiting for another cortex-serve to finish building the same python environment", {
      lock: file,
    });
  }, _WAIT_NOTICE_MS);
  try {
    await handle.lock(true);
  } catch (error) {
    handle.close();
    throw error;
  } finally {
    clearTimeout(notice);
  }
  return { [Symbol.dispose]: () => handle.close() };
}

/** Under the lock: removes leftovers of interrupted builds and an incomplete or broken `dir`. */
async function _removeStale(root: string, key: string, dir: string): Promise<void> {
  for await (const entry of Deno.readDir(root)) {
    if (entry.name.startsWith(`${key}.tmp-`) || entry.name.startsWith(`${key}.old-`)) {
      await Deno.remove(path.join(root, entry.name), { recursive: true }).catch(() => {});
    }
  }
  const aside = `${dir}.old-${Deno.pid}`;
  try {
    await Deno.rename(dir, aside);
  } catch {
    return;
  }
  await Deno.remove(aside, { recursive: true }).catch(() => {});
}

async function _mkdirPrivate(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
}

function _lines(bytes: Uint8Array): string[] {
  return new TextDecoder().decode(bytes).split("\n").filter((line) => line.trim() !== "").slice(-12);
}
