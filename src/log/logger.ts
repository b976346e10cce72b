/**
 * Structured logging: one line per event, as text for a terminal or JSON
 * lines for journald and log collectors.
 */

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

const encoder = new TextEncoder();

/** Lines waiting for the next write to stderr. */
const pending: string[] = [];
let pendingChars = 0;
let flushTimer: ReturnType<typeof setTimeout> | undefined;
/** Above this many buffered characters, write at once. */
const FLUSH_CHARS = 64 * 1024;

/**
 * Writes buffered log lines to stderr now. Lines are batched per event-loop
 * turn (one write for many request lines under load); warnings and errors,
 * and exit, flush at once.
 */
export function flushLogs(): void {
  if (flushTimer !== undefined) {
    clearTimeout(flushTimer);
    flushTimer = undefined;
  }
  if (pending.length === 0) return;
  let bytes = encoder.encode(pending.join(""));
  pending.length = 0;
  pendingChars = 0;
  while (bytes.byteLength > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
}

globalThis.addEventListener("unload", flushLogs);

function stderrSink(line: string): void {
  pending.push(line, "\n");
  pendingChars += line.length + 1;
  if (pendingChars >= FLUSH_CHARS) return flushLogs();
  if (flushTimer === undefined) {
    flushTimer = setTimeout(flushLogs, 0);
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
    // Formatted straight into one string: no merged field object per line.
    const json = this.format === "json";
    let line = json
      ? `{"time":"${now()}","level":"${level}","msg":${JSON.stringify(message)}`
      : `${now()} ${this.#tags[level]} ${message}`;
    const own = this.#fields;
    for (const key in own) {
      if (fields !== undefined && key in fields) continue; // the call's value wins
      line += json ? jsonField(key, own[key]) : textField(key, own[key]);
    }
    if (fields !== undefined) {
      for (const key in fields) line += json ? jsonField(key, fields[key]) : textField(key, fields[key]);
    }
    this.#sink(json ? line + "}" : line);
    if (LEVELS[level] >= LEVELS.warn && this.#sink === stderrSink) flushLogs();
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

function jsonField(key: string, value: unknown): string {
  if (value === undefined) return "";
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `,${JSON.stringify(key)}:`;
    if (quotedKeys.size < 1000) quotedKeys.set(key, quoted);
  }
  if (typeof value === "number" && Number.isFinite(value)) return quoted + value;
  const text = JSON.stringify(value);
  return text === undefined ? "" : quoted + text;
}

function textField(key: string, value: unknown): string {
  return value === undefined ? "" : ` ${key}=${textValue(value)}`;
}

function textValue(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}
