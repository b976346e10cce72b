/**
 * Whether the runtime exports OpenTelemetry data, apart from ./tracing.ts so
 * that a server without tracing never loads the OpenTelemetry API.
 *
 * @module
 */

/** True when the runtime exports OpenTelemetry data (`OTEL_DENO=true`). */
export function tracingEnabled(): boolean {
  try {
    return Deno.env.get("OTEL_DENO") === "true";
  } catch {
    return false; // no --allow-env
  }
}
