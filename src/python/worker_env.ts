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
 * from oversubscribing the CPUs, and the memory allocator's settings
 * (`PYTHONMALLOC`, glibc's `MALLOC_*`).
 *
 * Workers start with glibc's `MALLOC_MMAP_THRESHOLD_` at 4 MiB and
 * `MALLOC_TRIM_THRESHOLD_` at 32 MiB unless the server's environment or the
 * API's `python.env` sets them: glibc then keeps the memory of a large
 * request's buffers (a 1 MB body, its text, the answer) for the next one
 * instead of returning it and faulting it in again, page by page; the
 * worker does the same for Python's small objects (`arenas.py`). Both values
 * are within the range glibc's own adaptive thresholds reach (up to 32 and
 * 64 MiB); docs/python-environment.md, Memory for large requests.
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
  "PYTHONMALLOC",
]);
const PASSED_PREFIXES: readonly string[] = ["LC_", "PIP_", "CUDA_", "CORTEX_", "MALLOC_"];

/** Set in every worker's environment unless the server's or the API's says otherwise. */
const WORKER_DEFAULTS: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(4 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024),
};
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
 * @param extra set last: the API's `python.env`, `CORTEX_PROJECT_DIR`, ...
 */
export function workerEnv(
  serverEnv: Readonly<Record<string, string>>,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = { ...WORKER_DEFAULTS };
  for (const [name, value] of Object.entries(serverEnv)) {
    if (isPassedToWorker(name)) env[name] = value;
  }
  env["PYTHONUNBUFFERED"] = "1";
  return Object.assign(env, extra);
}

/** What pip needs beyond the worker's allow-list: proxies, CA bundles, config and cache locations. */
const PIP_NAMES: ReadonlySet<string> = new Set([
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "XDG_CONFIG_HOME",
  "XDG_CACHE_HOME",
]);

/**
 * The environment `pip install -r requirements.txt` runs with. A requirement
 * may run its own build code (`setup.py`), so pip gets the worker's
 * allow-list (which keeps `PIP_*` and `HOME`, hence pip.conf) plus proxies,
 * CA bundles and XDG locations, and none of the server's other variables.
 */
export function pipEnv(serverEnv: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(serverEnv)) {
    if (isPassedToWorker(name) || PIP_NAMES.has(name)) env[name] = value;
  }
  return env;
}
