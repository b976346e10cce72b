/**
 * Moving a freshly built virtual environment to its final directory. A venv
 * records its own path in a few text files: the `#!` line of the scripts pip
 * installs into `bin/`, the `activate` scripts and `pyvenv.cfg`. The
 * interpreter itself finds its prefix from where it runs, so rewriting those
 * files before the rename is enough.
 *
 * @module
 */
import * as path from "node:path";

/** Text files in `bin/` bigger than this are left alone (they are not scripts). */
const _MAX_SCRIPT_BYTES = 1 << 20;

/**
 * Replaces `from` by `to` in the text files of `venv` that mention it, so the
 * environment works once `venv` is renamed to `to`.
 *
 * @param venv The environment's current directory (`from`).
 * @param to The directory it will be renamed to.
 */
export async function relocateVenv(venv: string, to: string): Promise<void> {
  const files = [path.join(venv, "pyvenv.cfg")];
  const bin = path.join(venv, "bin");
  for await (const entry of Deno.readDir(bin)) {
    if (entry.isFile) files.push(path.join(bin, entry.name));
  }
  for (const file of files) await _rewrite(file, venv, to);
}

async function _rewrite(file: string, from: string, to: string): Promise<void> {
  const info = await Deno.lstat(file);
  if (!info.isFile || info.size > _MAX_SCRIPT_BYTES) return;
  const bytes = await Deno.readFile(file);
  if (bytes.includes(0)) return;
  const text = new TextDecoder().decode(bytes);
  if (!text.includes(from)) return;
  await Deno.writeTextFile(file, text.replaceAll(from, to));
}
