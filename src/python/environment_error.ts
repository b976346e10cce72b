/**
 * The error of preparing a project's Python environment:
 * `dependencies.sh`, the virtual environment, `pip install -r requirements.txt`.
 *
 * @module
 */
import { UserError } from "../errors/user_error.ts";

/** Stable codes of {@linkcode PythonEnvError}. */
export type PythonEnvErrorCode =
  | "VENV_CREATE_FAILED"
  | "PIP_UNAVAILABLE"
  | "PIP_INSTALL_FAILED"
  | "DEPENDENCIES_SH_FAILED";

/**
 * Startup cannot go on: the project's Python environment could not be
 * prepared. The message says what failed, shows the command's last output
 * lines and what to do.
 */
export class PythonEnvError extends UserError {
  override readonly code: PythonEnvErrorCode;
  constructor(code: PythonEnvErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PythonEnvError";
    this.code = code;
  }
}

/** Formats a command's last output lines for an error message, indented under it. */
export function outputTail(lines: readonly string[]): string {
  return lines.length === 0 ? "(no output)" : lines.map((line) => `\n  ${line}`).join("");
}
