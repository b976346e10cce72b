/** The logger's line format, through a sink that keeps the lines. */
import assert from "node:assert/strict";
import { type LogFormat, Logger } from "../src/log/logger.ts";

function capture(
  format: LogFormat,
  fields: Record<string, unknown> = {},
): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = new Logger({ format, colour: false, sink: (line) => lines.push(line), fields });
  return { logger, lines };
}

Deno.test("JSON lines: strings escaped as JSON.stringify does, numbers, objects, undefined left out", () => {
  const { logger, lines } = capture("json", { api: "iris", replica: 0 });
  const odd = 'quote " backslash \\ tab \t nl \n nul \u0000 lone \ud800 pair \ud83d\ude00 ünï';
  logger.info("request", {
    request_id: "abc",
    status: 200,
    latency_ms: 0.125,
    odd,
    gone: undefined,
    obj: { a: [1] },
  });
  logger.warn(odd, { replica: 3, inf: Infinity });
  const [first, second] = lines.map((line) => JSON.parse(line));
  assert.deepEqual({ ...first, time: undefined }, {
    time: undefined,
    level: "info",
    msg: "request",
    api: "iris",
    replica: 0,
    request_id: "abc",
    status: 200,
    latency_ms: 0.125,
    odd,
    obj: { a: [1] },
  });
  assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(second.msg, odd);
  assert.equal(second.replica, 3, "the call's value wins over the logger's own");
  assert.equal(second.inf, null);
  assert.ok(lines[0]!.includes(JSON.stringify(odd)), "the same escapes as JSON.stringify");
  assert.ok(!lines[0]!.includes("gone"));
});

Deno.test("a value JSON cannot hold throws and leaves no half line behind", () => {
  const { logger, lines } = capture("json");
  assert.throws(() => logger.info("bad", { big: 1n }));
  logger.info("good", { n: 1 });
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]!).msg, "good");
});

Deno.test("text lines: key=value, quoted when needed", () => {
  const { logger, lines } = capture("text", { api: "iris" });
  logger.info("worker ready", { pid: 42, note: "two words", gone: undefined });
  assert.match(lines[0]!, /^\S+Z INFO {2}worker ready api=iris pid=42 note="two words"$/);
});
