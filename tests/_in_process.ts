/**
 * Small tools of in-process tests: a logger whose records the test reads,
 * a sample's bytes, and holding the event loop for a deterministic
 * overdue deadline. (./_fake_worker.ts re-exports them beside the fake.)
 */
import { Logger } from "../src/log/logger.ts";

const encoder = new TextEncoder();

/** A JSON-lines logger whose records the test reads. */
export function recordingLogger(level: "debug" | "info" = "debug"): {
  logger: Logger;
  records: Record<string, unknown>[];
} {
  const records: Record<string, unknown>[] = [];
  const logger = new Logger({
    format: "json",
    level,
    sink: (line) => records.push(JSON.parse(line)),
  });
  return { logger, records };
}

/** Sample bytes for `value`. */
export function sample(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Busy-waits `ms` without yielding: timers cannot fire meanwhile (deterministic overdue deadlines). */
export function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Hold the event loop.
  }
}
