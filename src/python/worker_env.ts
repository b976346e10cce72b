/**
 * The environment a worker starts with: a minimal allow-list of the server's
 * own variables, so secrets in the server's environment do not reach user
 * code by accident, plus the API's `python.env` and `CORTEX_*` settings.
 */

const PASSED_NAMES: ReadonlySet<string> = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  "SYSTEMROOT",
  "OPENBLAS_CORETYPE",
  "OPENBLAS_L2_SIZE",
  "OMP_NUM_THREADS",
  "MKL_NUM_THREADS",
  "OPENBLAS_NUM_THREADS",
]);
const PASSED_PREFIXES: readonly string[] = ["LC_", "PIP_", "CUDA_", "CORTEX_"];

/** True when the server passes its own variable `name` to workers. */
export function isPassedToWorker(name: string): boolean {
  return PASSED_NAMES.has(name) ||
    PASSED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * Builds a worker's environment.
 *
 * @param serverEnv the server's environment (`Deno.env.toObject()`)
 * @param extra set last: the API's `python.env`, `CORTEX_PROJECT_DIR`, …
 */
export function workerEnv(
  serverEnv: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(serverEnv)) {
    if (isPassedToWorker(name)) env[name] = value;
  }
  env["PYTHONUNBUFFERED"] = "1";
  return Object.assign(env, extra);
}
