/**
 * Structured logging: one line per event, as text for a terminal or JSON
 * lines for journald and log collectors.
 */
import { LineBytes } from "./line_bytes.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
/** Extra fields of an event; `undefined` values are left out. */
export type LogFields = Readonly<Record<string, unknown>>;

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };
const COLOURS: Readonly<Record<LogLevel, string>> = {
  debug: "\x1b[90m",
  info: "\x1b[36m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
};

/** Where formatted lines go; defaults to stderr. */
export type LogSink = (line: string) => void;

/**
 * Sees every event of level info and above, whatever the logger's level:
 * the message, the logger's own fields and the event's fields (unmerged).
 */
export type LogTap = (
  level: LogLevel,
  message: string,
  own: LogFields,
  fields: LogFields | undefined,
) => void;

/** Options for {@link Logger}. */
export interface LoggerOptions {
  readonly format?: LogFormat;
  readonly level?: LogLevel;
  /** Colour the level in text format; default: stderr is a terminal and NO_COLOR is unset. */
  readonly colour?: boolean;
  readonly sink?: LogSink;
  /** Fields added to every line (e.g. `{ api: "classifier" }`). */
  readonly fields?: LogFields;
  /** Also hand events to this function (children inherit it). */
  readonly tap?: LogTap | undefined;
}

/**
 * Pieces of text: written by index into an array that keeps its size from
 * one use to the next (emptying an array frees its storage, and growing it
 * again costs an allocation per line), joined once.
 */
class Pieces {
  readonly #parts: string[] = [];
  #count = 0;

  put(piece: string): void {
    this.#parts[this.#count++] = piece;
  }

  /** Forgets what was put since `count`. */
  rewind(count: number): void {
    this.#count = count;
  }

  get count(): number {
    return this.#count;
  }

  /** What was put, joined; empties the buffer. */
  take(): string {
    const parts = this.#parts;
    if (parts.length !== this.#count) parts.length = this.#count;
    this.#count = 0;
    return parts.join("");
  }
}

/** What a line is formatted into: {@link Pieces} or {@link LineBytes}. */
interface LineOut {
  put(piece: string): void;
}

/** The line being formatted for a sink other than stderr. */
const pieces = new Pieces();

/** The lines waiting for the next write to stderr, formatted straight into it as bytes. */
const pending = new LineBytes();
let flushTimer: ReturnType<typeof setTimeout> | undefined;
/** Above this many buffered bytes, write at once. */
const FLUSH_BYTES = 64 * 1024;
/** Longest an info or debug line waits in the buffer, in milliseconds. */
const FLUSH_MS = 20;

/**
 * Writes buffered log lines to stderr now. Lines wait at most
 * {@link FLUSH_MS} and are written together: one write and one timer for
 * many request lines, not a write and an event-loop turn per request;
 * warnings and errors, and exit, flush at once.
 */
export function flushLogs(): void {
  if (flushTimer !== undefined) {
    clearTimeout(flushTimer);
    flushTimer = undefined;
  }
  if (pending.length === 0) return;
  let bytes = pending.view();
  try {
    while (bytes.byteLength > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
  } finally {
    pending.clear();
  }
}

globalThis.addEventListener("unload", flushLogs);

function stderrSink(line: string): void {
  pending.put(line);
  pending.put("\n");
  queued();
}

/** Schedules the write of what `pending` holds: at once past {@link FLUSH_BYTES}. */
function queued(): void {
  if (pending.length >= FLUSH_BYTES) return flushLogs();
  if (flushTimer === undefined) {
    flushTimer = setTimeout(flushLogs, FLUSH_MS);
    Deno.unrefTimer(flushTimer);
  }
}

function defaultColour(): boolean {
  return Deno.stderr.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
}

/** A logger: `logger.info("worker ready", { api, replica })`. */
export class Logger {
  readonly format: LogFormat;
  readonly level: LogLevel;
  readonly #colour: boolean;
  readonly #sink: LogSink;
  readonly #fields: LogFields;
  readonly #tap: LogTap | undefined;
  readonly #threshold: number;
  /** The level column of text lines, coloured when asked. */
  readonly #tags: Readonly<Record<LogLevel, string>>;

  constructor(options: LoggerOptions = {}) {
    this.format = options.format ?? "text";
    this.level = options.level ?? "info";
    this.#colour = options.colour ?? (this.format === "text" && defaultColour());
    this.#sink = options.sink ?? stderrSink;
    this.#fields = options.fields ?? {};
    this.#tap = options.tap;
    this.#threshold = LEVELS[this.level];
    const tag = (level: LogLevel) => {
      const text = level.toUpperCase().padEnd(5);
      return this.#colour ? `${COLOURS[level]}${text}\x1b[0m` : text;
    };
    this.#tags = { debug: tag("debug"), info: tag("info"), warn: tag("warn"), error: tag("error") };
  }

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger({
      format: this.format,
      level: this.level,
      colour: this.#colour,
      sink: this.#sink,
      fields: { ...this.#fields, ...fields },
      tap: this.#tap,
    });
  }

  /** True when lines of `level` are written. */
  enabled(level: LogLevel): boolean {
    return LEVELS[level] >= LEVELS[this.level];
  }

  debug(message: string, fields?: LogFields): void {
    this.log("debug", message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.log("info", message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.log("warn", message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.log("error", message, fields);
  }

  log(level: LogLevel, message: string, fields?: LogFields): void {
    if (this.#tap !== undefined && level !== "debug") this.#tap(level, message, this.#fields, fields);
    if (LEVELS[level] < this.#threshold) return;
    // Formatted straight into the bytes waiting for stderr (./line_bytes.ts),
    // or as pieces joined once for another sink: no merged field object,
    // and no string per line.
    const direct = this.#sink === stderrSink;
    const out: LineOut = direct ? pending : pieces;
    const first = direct ? pending.length : pieces.count;
    try {
      this.#format(out, level, message, fields);
    } catch (error) {
      // A value JSON cannot hold (a BigInt, a cycle): no half line.
      if (direct) pending.rewind(first);
      else pieces.rewind(first);
      throw error;
    }
    if (direct) {
      pending.put("\n");
      queued();
      if (LEVELS[level] >= LEVELS.warn) flushLogs();
    } else {
      this.#sink(pieces.take());
    }
  }

  /** Pushes the pieces of one line (without its newline) to `out`. */
  #format(out: LineOut, level: LogLevel, message: string, fields: LogFields | undefined): void {
    const json = this.format === "json";
    if (json) {
      out.put('{"time":"');
      out.put(now());
      out.put('","level":"');
      out.put(level);
      out.put('","msg":');
      pushJsonString(out, message);
    } else {
      out.put(now());
      out.put(" ");
      out.put(this.#tags[level]);
      out.put(" ");
      out.put(message);
    }
    const own = this.#fields;
    for (const key in own) {
      if (fields !== undefined && key in fields) continue; // the call's value wins
      if (json) pushJsonField(out, key, own[key]);
      else pushTextField(out, key, own[key]);
    }
    if (fields !== undefined) {
      for (const key in fields) {
        if (json) pushJsonField(out, key, fields[key]);
        else pushTextField(out, key, fields[key]);
      }
    }
    if (json) out.put("}");
  }
}

let clockMs = -1;
let clockText = "";

/** The current time as ISO 8601, formatted once per millisecond however many lines share it. */
function now(): string {
  const ms = Date.now();
  if (ms !== clockMs) {
    clockMs = ms;
    clockText = new Date(ms).toISOString();
  }
  return clockText;
}

/** `,"key":` of each field name seen, so a name is quoted once, not once per line. */
const quotedKeys = new Map<string, string>();

/** Characters a JSON string must escape (and lone surrogates, left to `JSON.stringify` too). */
// deno-lint-ignore no-control-regex -- JSON escapes the control characters
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function pushJsonString(out: LineOut, text: string): void {
  if (NEEDS_ESCAPE.test(text)) return out.put(JSON.stringify(text));
  out.put('"');
  out.put(text);
  out.put('"');
}

function pushJsonField(out: LineOut, key: string, value: unknown): void {
  if (value === undefined) return;
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `,${JSON.stringify(key)}:`;
    if (quotedKeys.size < 1000) quotedKeys.set(key, quoted);
  }
  if (typeof value === "string") {
    out.put(quoted);
    return pushJsonString(out, value);
  }
  if (typeof value === "number" && Number.isFinite(value)) {
    out.put(quoted);
    // Not String(value): V8 keeps each number it turns into a string in a
    // cache in the old generation, so every request's latency (a new
    // fraction each time) and its string lived until the next full
    // collection; at c=16 that was 125 KB promoted per scavenge, the p99
    // twice as long (docs/performance.md). JSON.stringify writes the same
    // digits and caches nothing.
    return out.put(JSON.stringify(value));
  }
  const text = JSON.stringify(value);
  if (text === undefined) return;
  out.put(quoted);
  out.put(text);
}

function pushTextField(out: LineOut, key: string, value: unknown): void {
  if (value === undefined) return;
  out.put(" ");
  out.put(key);
  out.put("=");
  out.put(textValue(value));
}

function textValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}
