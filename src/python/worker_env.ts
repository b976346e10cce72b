/**
 * The environment a worker starts with: a minimal allow-list of the server's
 * own variables, so secrets in the server's environment do not reach user
 * code by accident, plus the API's `python.env` and `CORTEX_*` settings.
 *
 * Passed: `PATH`, `HOME`, the locale (`LANG`, `LANGUAGE`, `LC_*`), `PIP_*`,
 * `CUDA_*`, `CORTEX_*` (except `CORTEX_API_KEYS_FILE` and `CORTEX_API_KEY`,
 * the server's key file and the command-line client's key). Also passed, because they carry no credentials and
 * dropping them would silently change how user code behaves: `USER` and
 * `LOGNAME` (`getpass.getuser()`), `TZ` (local timestamps), `TMPDIR` (where
 * `tempfile` writes; it may be set because `/tmp` is small or shared) and
 * the BLAS/OpenMP thread settings an operator sets to keep several replicas
 * from oversubscribing the CPUs.
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
  "OPENBLAS_CORETYPE",
  "OPENBLAS_L2_SIZE",
  "OMP_NUM_THREADS",
  "MKL_NUM_THREADS",
  "OPENBLAS_NUM_THREADS",
]);
const PASSED_PREFIXES: readonly string[] = ["LC_", "PIP_", "CUDA_", "CORTEX_"];
/** Server settings that match a prefix above but name a secret. */
const WITHHELD_NAMES: ReadonlySet<string> = new Set(["CORTEX_API_KEYS_FILE", "CORTEX_API_KEY"]);

/** True when the server passes its own variable `name` to workers. */
export function isPassedToWorker(name: string): boolean {
  if (WITHHELD_NAMES.has(name)) return false;
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
