/**
 * Kubernetes-style resource quantities, as written in `compute.mem` and
 * `compute.cpu`.
 *
 * A quantity is a decimal number (`1`, `1.5`, `.5`) followed by an optional
 * suffix: a binary unit (`Ki` ... `Ei`), a decimal unit (`k` ... `E`, `m` for
 * milli) or a decimal exponent (`1e9`, `5E-1`).
 */

const _BINARY_POWERS: Readonly<Record<string, number>> = {
  Ki: 10,
  Mi: 20,
  Gi: 30,
  Ti: 40,
  Pi: 50,
  Ei: 60,
};

const _DECIMAL_EXPONENTS: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  "": 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const _MEMORY_SUFFIXES = "Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E";
const _NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)/;
const _EXPONENT = /^[eE][+-]?\d+$/;

/**
 * Parses a memory quantity into bytes, rounded up to a whole byte.
 *
 * @param q a quantity such as `"512Mi"`, `"1.5Gi"`, `"1G"`, `"1e9"` or a number of bytes
 * @returns the number of bytes (never negative)
 * @throws {RangeError} when `q` is not a memory quantity
 *
 * @example
 * ```ts
 * parseMemoryQuantity("1.5Gi"); // 1610612736
 * parseMemoryQuantity("500M"); // 500000000
 * ```
 */
export function parseMemoryQuantity(q: string | number): number {
  const what = "memory quantity";
  if (typeof q === "number") return Math.ceil(_checkNumber(q, what));
  const { value, suffix } = _split(q, what);
  if (suffix === "m" || suffix === "u" || suffix === "n") {
    throw new RangeError(
      `Invalid ${what} "${q}": "${suffix}" means a fraction of a byte; for megabytes write "${value}Mi" or "${value}M"`,
    );
  }
  return Math.ceil(_scale(q, value, suffix, what, true));
}

/**
 * Parses a CPU quantity into cores.
 *
 * @param q a quantity such as `"500m"`, `"2"`, `"0.5"` or a number of cores
 * @returns the number of cores (never negative)
 * @throws {RangeError} when `q` is not a CPU quantity
 *
 * @example
 * ```ts
 * parseCpuQuantity("500m"); // 0.5
 * parseCpuQuantity(2); // 2
 * ```
 */
export function parseCpuQuantity(q: string | number): number {
  const what = "CPU quantity";
  if (typeof q === "number") return _checkNumber(q, what);
  const { value, suffix } = _split(q, what);
  if (suffix in _BINARY_POWERS || /^[kMGTPE]$/.test(suffix)) {
    throw new RangeError(
      `Invalid ${what} "${q}": CPU is counted in cores, write "2" for two cores or "500m" for half a core`,
    );
  }
  return _scale(q, value, suffix, what, false);
}

/** Splits `"1.5Gi"` into `"1.5"` and `"Gi"`, refusing negative numbers. */
function _split(q: string, what: string): { value: string; suffix: string } {
  const match = _NUMBER.exec(q);
  if (match === null) {
    throw new RangeError(
      `Invalid ${what} "${q}": expected a number with an optional unit, such as "512Mi" or "500m"`,
    );
  }
  const value = match[0];
  if (value.startsWith("-")) {
    throw new RangeError(`Invalid ${what} "${q}": must not be negative`);
  }
  return { value, suffix: q.slice(value.length) };
}

/** Applies `suffix` to the decimal string `value`, exactly where possible. */
function _scale(
  q: string,
  value: string,
  suffix: string,
  what: string,
  binary: boolean,
): number {
  let result: number;
  const power = _BINARY_POWERS[suffix];
  const exponent = _DECIMAL_EXPONENTS[suffix];
  if (binary && power !== undefined) {
    result = Number(value) * 2 ** power;
  } else if (exponent !== undefined) {
    // Let the number parser do the decimal shift: "0.1k" is exactly 100.
    result = Number(`${value}e${exponent}`);
  } else if (_EXPONENT.test(suffix)) {
    result = Number(`${value}${suffix}`);
  } else {
    const units = binary ? _MEMORY_SUFFIXES : "m (milli-cores) or none";
    const space = /\s/.test(suffix) ? " without spaces" : "";
    throw new RangeError(
      `Invalid ${what} "${q}": unknown unit "${suffix.trim()}", use one of ${units}${space}`,
    );
  }
  return _checkNumber(result, what, q);
}

/** Rejects negative, infinite and NaN numbers. */
function _checkNumber(n: number, what: string, shown: string | number = n): number {
  const text = typeof shown === "string" ? `"${shown}"` : String(shown);
  if (Number.isNaN(n) || n < 0) {
    throw new RangeError(`Invalid ${what} ${text}: must be a number of at least 0`);
  }
  if (!Number.isFinite(n)) {
    throw new RangeError(`Invalid ${what} ${text}: too large`);
  }
  return n;
}
