/**
 * The project's `.env` (Cortex 0.18+): `VARIABLE=value` lines exported to
 * every worker, as Cortex's `set -a; source .env` did. Blank lines and `#`
 * comments are skipped, `export ` is allowed, a value may be single-quoted
 * (taken literally), double-quoted (`\"`, `\\`, `\n`, `\t` understood) or
 * bare (trimmed, a ` #` comment cut). Variables are not expanded. The
 * values override `predictor.env`, as sourcing the file did in Cortex.
 *
 * @module
 */
import type { ConfigIssue } from "./errors.ts";

/** Largest `.env` read, in bytes. */
export const MAX_DOTENV_BYTES = 1024 * 1024;

const _LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;

/** What {@linkcode parseDotenv} found. */
export interface Dotenv {
  readonly vars: Readonly<Record<string, string>>;
  readonly issues: readonly ConfigIssue[];
}

/** Parses the text of a `.env` file; each bad line is an issue naming it. */
export function parseDotenv(text: string, file = ".env"): Dotenv {
  const vars: Record<string, string> = {};
  const issues: ConfigIssue[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = _LINE.exec(raw);
    const issue = (problem: string, fix: string) =>
      issues.push({ file, resource: undefined, path: "", line: index + 1, column: 1, problem, fix });
    if (match === null) {
      issue(
        `is not a VARIABLE=value line: ${JSON.stringify(line.slice(0, 60))}`,
        "write NAME=value, with a name of letters, digits and underscores",
      );
      return;
    }
    const value = _value(match[2]!);
    if (value === undefined) {
      issue("has a quoted value without its closing quote", "close the quote on the same line");
      return;
    }
    if (match[1]!.startsWith("CORTEX_")) {
      issue(`${match[1]}: names starting with "CORTEX_" are reserved for the server`, "rename the variable");
      return;
    }
    vars[match[1]!] = value;
  });
  return { vars, issues };
}

function _value(text: string): string | undefined {
  const trimmed = text.trim();
  const quote = trimmed[0];
  if (quote === "'" || quote === '"') {
    const end = trimmed.indexOf(quote, 1);
    if (quote === "'") return end < 0 ? undefined : trimmed.slice(1, end);
    let out = "";
    for (let i = 1; i < trimmed.length; i++) {
      const c = trimmed[i]!;
      if (c === '"') return out;
      if (c === "\\" && i + 1 < trimmed.length) {
        const next = trimmed[++i]!;
        out += next === "n" ? "\n" : next === "t" ? "\t" : next;
      } else out += c;
    }
    return undefined;
  }
  const comment = trimmed.search(/\s#/);
  return (comment < 0 ? trimmed : trimmed.slice(0, comment)).trim();
}

/**
 * Reads `<root>/.env`: its variables, or none when the file is absent.
 *
 * @throws {Error} when it is over {@link MAX_DOTENV_BYTES} or unreadable
 */
export async function readDotenv(root: string): Promise<Dotenv> {
  const path = `${root}/.env`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { vars: {}, issues: [] };
    throw error;
  }
  if (!info.isFile) return { vars: {}, issues: [] };
  if (info.size > MAX_DOTENV_BYTES) {
    return {
      vars: {},
      issues: [{
        file: ".env",
        resource: undefined,
        path: "",
        line: undefined,
        column: undefined,
        problem: `is ${info.size} bytes, over the limit of ${MAX_DOTENV_BYTES}`,
        fix: "keep only environment variables in .env",
      }],
    };
  }
  return parseDotenv(await Deno.readTextFile(path));
}
