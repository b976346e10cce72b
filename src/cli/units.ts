/** Parsing of flag values: durations and byte sizes. */
import { UserError } from "../errors/user_error.ts";
import { parseMemoryQuantity } from "../config/quantity.ts";

/** A flag value the user must fix. */
export class UsageError extends UserError {
  override readonly code = "USAGE";
  override readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses `60`, `60s`, `1.5s`, `500ms`, `2m`, `7d` into milliseconds (a bare
 * number is seconds).
 *
 * @throws {UsageError} naming the flag
 */
export function parseDuration(flag: string, value: string): number {
  const match = DURATION.exec(value.trim());
  if (!match) {
    throw new UsageError(
      `--${flag}: ${JSON.stringify(value)} is not a duration: write seconds (60) or 500ms, 60s, 2m`,
    );
  }
  return Number(match[1]) * UNIT_MS[match[2] ?? "s"]!;
}

/**
 * Parses a byte size: `33554432`, `32Mi`, `1G`.
 *
 * @throws {UsageError} naming the flag
 */
export function parseBytes(flag: string, value: string): number {
  try {
    const bytes = parseMemoryQuantity(value.trim());
    if (bytes >= 1) return bytes;
  } catch {
    // Reported below.
  }
  throw new UsageError(
    `--${flag}: ${JSON.stringify(value)} is not a size: write bytes (1048576) or 32Mi, 1Gi`,
  );
}

/**
 * Parses a positive whole number.
 *
 * @throws {UsageError} naming the flag
 */
export function parsePositiveInt(flag: string, value: string, max = 1_000_000): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > max) {
    throw new UsageError(`--${flag}: ${JSON.stringify(value)} must be a whole number from 1 to ${max}`);
  }
  return n;
}
