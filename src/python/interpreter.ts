/**
 * Choosing and checking the Python interpreter (docs/python-environment.md,
 * "Interpreter"): `--python`, else `CORTEX_PYTHON`, else `python3` on PATH;
 * version >= 3.8 with `msgpack`.
 * Cortex's image had `boto3`, `numpy` and `requests` pre-installed, and user
 * code imports them without listing them: each one missing is a warning.
 */
import { UserError } from "../errors/user_error.ts";

/** The interpreter is missing, too old, or lacks what the worker needs. */
export class InterpreterError extends UserError {
  override readonly code: "PYTHON_NOT_FOUND" | "PYTHON_TOO_OLD" | "PYTHON_MISSING_MSGPACK" | "PYTHON_BROKEN";
  constructor(code: InterpreterError["code"], message: string) {
    super(message);
    this.name = "InterpreterError";
    this.code = code;
  }
}

/** A checked interpreter. */
export interface Interpreter {
  /** As given (a name on PATH or a path). */
  readonly command: string;
  /** `sys.executable`: the resolved path. */
  readonly executable: string;
  readonly version: string;
  /** One line per package of Cortex's pre-installed set the interpreter lacks. */
  readonly warnings: readonly string[];
}

/** Cortex's pre-installed packages besides msgpack, with their Debian package. */
const PREINSTALLED: readonly (readonly [string, string])[] = [
  ["boto3", "python3-boto3"],
  ["numpy", "python3-numpy"],
  ["requests", "python3-requests"],
];

/** `--python`, else `CORTEX_PYTHON`, else `python3`. */
export function chooseInterpreter(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  return flag ?? env["CORTEX_PYTHON"] ?? "python3";
}

const PROBE = `
import json, sys
info = {"executable": sys.executable, "version": list(sys.version_info[:3])}
try:
    import msgpack
    info["msgpack"] = True
except ImportError:
    info["msgpack"] = False
import importlib.util
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
info["missing"] = [m for m in ("boto3", "numpy", "requests") if not found(m)]
print(json.dumps(info))
`;

const INSTALL_HINT =
  "install it with `apt-get install python3-msgpack` (Debian/Ubuntu) or `pip install msgpack`, or choose another interpreter with --python or CORTEX_PYTHON";

/**
 * Runs the interpreter once to check version and msgpack.
 *
 * @throws {InterpreterError} with a message saying exactly what to install
 */
export async function checkInterpreter(command: string): Promise<Interpreter> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, {
      args: ["-c", PROBE],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new InterpreterError(
        "PYTHON_NOT_FOUND",
        `Python interpreter not found: ${command}: install python3 (apt-get install python3) or pass --python PATH`,
      );
    }
    throw error;
  }
  const text = new TextDecoder().decode(output.stdout).trim();
  let info: { executable: string; version: number[]; msgpack: boolean; missing?: string[] };
  try {
    info = JSON.parse(text.split("\n").at(-1) ?? "");
  } catch {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1) ?? "";
    throw new InterpreterError("PYTHON_BROKEN", `Python interpreter ${command} did not run: ${stderr}`);
  }
  const [major = 0, minor = 0, patch = 0] = info.version;
  const version = `${major}.${minor}.${patch}`;
  if (major < 3 || (major === 3 && minor < 8)) {
    throw new InterpreterError(
      "PYTHON_TOO_OLD",
      `Python ${version} at ${info.executable} is too old: cortex-serve needs Python 3.8 or newer; pass --python PATH`,
    );
  }
  if (!info.msgpack) {
    throw new InterpreterError(
      "PYTHON_MISSING_MSGPACK",
      `Python ${version} at ${info.executable} lacks the msgpack package the worker needs: ${INSTALL_HINT}`,
    );
  }
  const warnings = PREINSTALLED.filter(([name]) => info.missing?.includes(name)).map(([name, deb]) =>
    `Python ${version} at ${info.executable} lacks ${name}, which Cortex had pre-installed: ` +
    `code that imports it will fail; apt-get install ${deb} (Debian/Ubuntu) or add ${name} to requirements.txt`
  );
  return { command, executable: info.executable, version, warnings };
}
