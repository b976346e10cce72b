/**
 * cortex-serve command line: parses arguments and runs a subcommand. All
 * behaviour lives in src/.
 *
 * Each subcommand's modules are imported when it runs, so a server holds
 * none of the code (and the modules it pulls in) of `validate`, `predict`
 * or `get` (docs/performance.md, "Memory"). The specifiers are static
 * strings: `deno bundle` and `deno compile` include them.
 */
import { UsageError } from "./src/cli/units.ts";
import { UserError } from "./src/errors/user_error.ts";
import { flushLogs } from "./src/log/logger.ts";

const HELP = `Usage: cortex-serve <command> [options]

Serves a Cortex project directory (cortex.yaml + Python inference file) over HTTP.

Commands:
  serve [DIR]                 serve the project in DIR (default: the current directory)
  validate [DIR]              check config, files and Python code without serving
  predict API SAMPLE_FILE     send a sample to a running server, print the prediction
  get [API]                   status table of a running server's APIs

Options:
  -h, --help    help (also: cortex-serve <command> --help)
  --version     program, Deno and worker protocol versions

Example:
  cortex-serve serve examples/iris-classifier
`;

/** Runs the command line; returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      console.log(HELP);
      return command === undefined ? 2 : 0;
    case "--version":
    case "version":
      console.log((await import("./src/cli/version.ts")).versionText());
      return 0;
    case "serve": {
      const { parseServeArgs, SERVE_HELP } = await import("./src/cli/serve_options.ts");
      const options = parseServeArgs(rest);
      if (options === "help") {
        console.log(SERVE_HELP);
        return 0;
      }
      return await (await import("./src/cli/serve.ts")).serve(options);
    }
    case "validate": {
      const { parseValidateArgs, validate, VALIDATE_HELP } = await import("./src/cli/validate.ts");
      const options = parseValidateArgs(rest);
      if (options === "help") {
        console.log(VALIDATE_HELP);
        return 0;
      }
      return await validate(options);
    }
    case "predict": {
      const { parsePredictArgs, predict, PREDICT_HELP } = await import("./src/cli/predict.ts");
      const options = parsePredictArgs(rest);
      if (options === "help") {
        console.log(PREDICT_HELP);
        return 0;
      }
      return await predict(options);
    }
    case "get": {
      const { parseGetArgs, get, GET_HELP } = await import("./src/cli/get.ts");
      const options = parseGetArgs(rest);
      if (options === "help") {
        console.log(GET_HELP);
        return 0;
      }
      return await get(options);
    }
    default:
      throw new UsageError(`Unknown command ${JSON.stringify(command)}: see cortex-serve --help`);
  }
}

/** Errors a user can act on print as one message; anything else is a bug with a stack. */
function report(error: unknown): number {
  if (error instanceof UserError) {
    console.error(`error: ${error.message}`);
    return error.exitCode;
  }
  console.error(error);
  return 1;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    flushLogs();
    code = report(error);
  }
  flushLogs();
  Deno.exit(code);
}
