/**
 * Test helpers for startups that are expected to fail: run `cortex-serve
 * serve` to its exit and collect its output; build a tiny wheel locally.
 */
import { join } from "node:path";
import { CLI, PYTHON, ROOT } from "./_helpers.ts";

/** How a `serve` run ended. */
export interface ServeOnceResult {
  readonly code: number;
  /** stdout and stderr together. */
  readonly output: string;
  /** The `error: ...` line main.ts prints, with its indented continuation lines. */
  readonly error: string;
}

/**
 * Runs `cortex-serve serve DIR --port=0 --log-format=json ARGS` until it exits
 * (at most `timeoutMs`). `--python` is only passed when `python` is given.
 */
export async function serveOnce(
  projectDir: string,
  options: {
    readonly args?: readonly string[];
    readonly env?: Record<string, string>;
    readonly python?: string | null;
    readonly timeoutMs?: number;
  } = {},
): Promise<ServeOnceResult> {
  const python = options.python === undefined ? PYTHON : options.python;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI,
      "serve",
      projectDir,
      "--port=0",
      "--log-format=json",
      ...(python === null ? [] : [`--python=${python}`]),
      ...(options.args ?? []),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env ?? {},
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  const decoder = new TextDecoder();
  const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  const start = text.indexOf("error: ");
  const error = start === -1 ? "" : text.slice(start).split(/\n(?! )/)[0] ?? "";
  return { code: output.code, output: text, error };
}

/**
 * Writes `<name>-<version>-py3-none-any.whl` into `dir`: one package whose
 * `__init__.py` defines `VERSION`, and a console script `<name>-hello`. Built with Python's zipfile, so neither
 * setuptools nor a network is needed.
 */
export async function buildWheel(dir: string, name: string, version: string): Promise<string> {
  const file = join(dir, `${name}-${version}-py3-none-any.whl`);
  const script = `
import base64, hashlib, sys, zipfile
file, name, version = sys.argv[1:4]
info = "%s-%s.dist-info" % (name, version)
files = {
    name + "/__init__.py": "VERSION = %r\\n\\ndef hello():\\n    print('hello from', VERSION)\\n" % version,
    info + "/entry_points.txt": "[console_scripts]\\n%s-hello = %s:hello\\n" % (name, name),
    info + "/METADATA": "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, version),
    info + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: cortex-serve-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
with zipfile.ZipFile(file, "w") as wheel:
    for path, text in files.items():
        data = text.encode()
        wheel.writestr(path, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(info + "/RECORD,,")
    wheel.writestr(info + "/RECORD", "\\n".join(record) + "\\n")
`;
  const result = await new Deno.Command(PYTHON, {
    args: ["-c", script, file, name, version],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) throw new Error(new TextDecoder().decode(result.stderr));
  return file;
}
