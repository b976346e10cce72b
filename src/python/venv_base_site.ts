/**
 * A virtual environment made from an interpreter that is itself in a virtual
 * environment (`--python /opt/venv/bin/python`) sees only the *base*
 * installation's site-packages, not the outer environment's, where msgpack
 * and the user's packages may live. A `.pth` file listing the outer
 * environment's site-packages closes that gap; the new environment's own
 * packages still come first.
 *
 * @module
 */
import * as path from "node:path";

/** Name of the `.pth` file written into the new environment's site-packages. */
export const BASE_SITE_PTH = "_cortex_serve_base_site.pth";

const _BASE_PROBE = `
import json, site, sys
print(json.dumps({"venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix), "site": site.getsitepackages()}))
`;
const _PURELIB_PROBE = `import sysconfig; print(sysconfig.get_paths()["purelib"])`;

/**
 * When `baseExecutable` runs in a virtual environment, makes its
 * site-packages visible to the environment of `venvPython`. Returns the
 * directories added (none when the base is a plain installation).
 *
 * @param baseExecutable The interpreter the environment was made from.
 * @param venvPython The new environment's interpreter.
 * @throws {Error} When either interpreter cannot be asked for its paths.
 */
export async function inheritBaseSite(baseExecutable: string, venvPython: string): Promise<string[]> {
  const base = JSON.parse(await _run(baseExecutable, _BASE_PROBE)) as { venv: boolean; site: string[] };
  if (!base.venv) return [];
  const purelib = (await _run(venvPython, _PURELIB_PROBE)).trim();
  await Deno.writeTextFile(path.join(purelib, BASE_SITE_PTH), base.site.join("\n") + "\n");
  return base.site;
}

async function _run(python: string, code: string): Promise<string> {
  const output = await new Deno.Command(python, {
    args: ["-c", code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(`Cannot ask ${python} for its site-packages: ${decoder.decode(output.stderr).trim()}`);
  }
  return decoder.decode(output.stdout).trim().split("\n").at(-1) ?? "";
}
