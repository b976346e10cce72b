/**
 * `.cortexignore` at the project root: files and directories left out of
 * the staged tree, in gitignore syntax, as Cortex's CLI read it: `#`
 * comments, blank lines, `!` to include again, a trailing `/` for
 * directories only, a leading or inner `/` to anchor at the root, `*`, `?`,
 * `**` and `[...]` classes; the last matching rule decides. As in git, a
 * file inside an excluded directory cannot be included again.
 *
 * @module
 */

/** One rule of the file. */
interface _Rule {
  readonly negate: boolean;
  readonly dirOnly: boolean;
  readonly regex: RegExp;
}

/** The rules of one `.cortexignore`; `ignores` answers for one path. */
export class IgnoreRules {
  readonly #rules: readonly _Rule[];

  constructor(text: string) {
    this.#rules = text.split(/\r?\n/).map(_rule).filter((r): r is _Rule => r !== undefined);
  }

  /** True when there are no rules. */
  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /**
   * Whether the entry at `path` (relative, `/`-separated) is left out; its
   * parent directories are checked by the walk before it gets here.
   */
  ignores(path: string, isDirectory: boolean): boolean {
    let ignored = false;
    for (const rule of this.#rules) {
      if (rule.dirOnly && !isDirectory) continue;
      if (rule.regex.test(path)) ignored = !rule.negate;
    }
    return ignored;
  }
}

/**
 * Reads `<root>/.cortexignore`; rules that ignore nothing when it is absent.
 */
export async function readIgnoreRules(root: string): Promise<IgnoreRules> {
  try {
    return new IgnoreRules(await Deno.readTextFile(`${root}/.cortexignore`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) {
      return new IgnoreRules("");
    }
    throw error;
  }
}

function _rule(line: string): _Rule | undefined {
  let text = line.replace(/(?<!\\)\s+$/, "");
  if (text === "" || text.startsWith("#")) return undefined;
  let negate = false;
  if (text.startsWith("!")) {
    negate = true;
    text = text.slice(1);
  } else if (text.startsWith("\\!") || text.startsWith("\\#")) text = text.slice(1);
  const dirOnly = text.endsWith("/");
  if (dirOnly) text = text.replace(/\/+$/, "");
  if (text === "") return undefined;
  const anchored = text.includes("/");
  text = text.replace(/^\//, "");
  const body = _glob(text);
  const prefix = anchored ? "^" : "^(?:.*/)?";
  return { negate, dirOnly, regex: new RegExp(`${prefix}${body}$`) };
}

/** A gitignore glob as a regular expression body. */
function _glob(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        const slashBefore = i === 0 || glob[i - 1] === "/";
        const slashAfter = glob[i + 2] === "/" || i + 2 === glob.length;
        if (slashBefore && slashAfter) {
          if (i + 2 === glob.length) out += ".*";
          else {
            out += "(?:.*/)?";
            i++; // the slash after
          }
          i++;
          continue;
        }
      }
      out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) out += "\\[";
      else {
        let cls = glob.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (cls.startsWith("!")) cls = `^${cls.slice(1)}`;
        out += `[${cls}]`;
        i = end;
      }
    } else if (c === "\\" && i + 1 < glob.length) {
      out += _escape(glob[++i]!);
    } else out += _escape(c);
  }
  return out;
}

function _escape(c: string): string {
  return /[.+^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}
