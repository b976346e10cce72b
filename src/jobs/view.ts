/**
 * A job as `GET <endpoint>/<id>` and webhooks show it: Cortex's AsyncAPI
 * shape (`id`, `status`, `result`, `error`, `timestamp`) with a few more
 * fields. A JSON result is embedded as JSON, a text one as a string, any
 * other as base64 with `result_encoding: "base64"`.
 *
 * @module
 */
import type { JobRecord } from "./job.ts";

/** The JSON of a job. */
export interface JobView {
  readonly id: string;
  readonly status: string;
  readonly result?: unknown;
  readonly result_encoding?: "base64";
  readonly result_content_type?: string;
  readonly error?: string;
  /** ISO 8601 time of the job's last change. */
  readonly timestamp: string;
  readonly created_at: string;
  readonly started_at: string | null;
  readonly completed_at: string | null;
  readonly attempts: number;
}

const decoder = new TextDecoder();

/** The view of `record`. */
export function jobView(record: JobRecord): JobView {
  const iso = (ms: number | undefined) => ms === undefined ? null : new Date(ms).toISOString();
  const result = record.result;
  const shown = result === undefined ? {} : resultFields(result.body, result.contentType);
  return {
    id: record.id,
    status: record.status,
    ...shown,
    ...(record.error === undefined ? {} : { error: record.error }),
    timestamp: new Date(record.finishedAt ?? record.startedAt ?? record.createdAt).toISOString(),
    created_at: iso(record.createdAt)!,
    started_at: iso(record.startedAt),
    completed_at: iso(record.finishedAt),
    attempts: record.attempts,
  };
}

function resultFields(body: Uint8Array, contentType: string): Partial<JobView> {
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      return { result: JSON.parse(decoder.decode(body)) };
    } catch {
      // Not JSON after all: shown as bytes below.
    }
  } else if (type.startsWith("text/")) {
    return { result: decoder.decode(body), result_content_type: contentType };
  }
  return { result: base64(body), result_encoding: "base64", result_content_type: contentType };
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
