/**
 * Errors raised while loading `cortex.yaml`.
 *
 * Every problem is a {@linkcode ConfigIssue} that names the file, the
 * resource, the key path, the YAML position and a fix. A
 * {@linkcode ConfigError} carries all issues found in one pass.
 */
import { UserError } from "../errors/user_error.ts";

/** One problem found in a config file. */
export interface ConfigIssue {
  /** The config file, relative to the project directory (`cortex.yaml`). */
  readonly file: string;
  /** `deployment "name"`, `api "name"`, `resource #3`; `undefined` for file-level issues. */
  readonly resource: string | undefined;
  /** Dotted key path inside the resource (`compute.min_replicas`); `""` when none. */
  readonly path: string;
  /** 1-based line in the YAML source, `undefined` when the issue has no position. */
  readonly line: number | undefined;
  /** 1-based column in the YAML source, `undefined` when the issue has no position. */
  readonly column: number | undefined;
  /** What is wrong; starts lower-case after a key path, capitalised otherwise. */
  readonly problem: string;
  /** What to do about it. */
  readonly fix: string;
}

/** Why a config could not be loaded. */
export type ConfigErrorCode =
  | "CONFIG_INVALID"
  | "CONFIG_NOT_FOUND"
  | "CONFIG_TOO_LARGE"
  | "CONFIG_SYNTAX";

/**
 * Formats one issue on one line.
 *
 * @example
 * ```ts
 * formatIssue({
 *   file: "cortex.yaml", resource: 'api "classifier"', path: "compute.min_replicas",
 *   line: 14, column: 7, problem: 'must be an integer of at least 1, got "two"',
 *   fix: "write a whole number such as 1",
 * });
 * // cortex.yaml:14:7: api "classifier": compute.min_replicas: must be an integer
 * // of at least 1, got "two" (fix: write a whole number such as 1)
 * ```
 */
export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line !== undefined) {
    where += `:${issue.line}`;
    if (issue.column !== undefined) where += `:${issue.column}`;
  }
  const parts = [where];
  if (issue.resource !== undefined) parts.push(issue.resource);
  if (issue.path !== "") parts.push(issue.path);
  parts.push(`${_oneLine(issue.problem)} (fix: ${_oneLine(issue.fix)})`);
  return parts.join(": ");
}

/** Thrown by `loadProjectConfig`; `message` lists every issue, one per line. */
export class ConfigError extends UserError {
  /** What kind of failure this is; callers branch on it. */
  override readonly code: ConfigErrorCode;
  /** Every problem found, in source order. */
  readonly issues: readonly ConfigIssue[];

  /**
   * @param code what kind of failure this is
   * @param issues the problems found; at least one
   */
  constructor(code: ConfigErrorCode, issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "ConfigError";
    this.code = code;
    this.issues = issues;
  }
}

/** Collapses line breaks so that one issue always stays on one line. */
function _oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ");
}
