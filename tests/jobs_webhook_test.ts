/**
 * Webhooks through a real server to real HTTP sinks on loopback: delivered
 * after failed tries (backoff), the events filter, and a target that never
 * answers holding up nothing.
 */
import assert from "node:assert/strict";
import { post, startServer } from "./_helpers.ts";
import { asyncProject, eventually } from "./_jobs.ts";

/** A webhook target: answers 500 to the first `failures` tries of each job, then 204. */
function sink(failures: number) {
  const tries = new Map<string, number>();
  const delivered: Record<string, unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    const key = `${body.id}:${body.status}`;
    const n = (tries.get(key) ?? 0) + 1;
    tries.set(key, n);
    if (n <= failures) return new Response("not now", { status: 500 });
    delivered.push(body);
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    tries,
    delivered,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("webhook: delivered once after the target failed twice; the events filter is honoured", async () => {
  await using target = sink(2);
  await using project = await asyncProject();
  await using server = await startServer(project.path);
  const hook = encodeURIComponent(target.url);
  const completedOnly =
    await (await post(`${server.url}/api?webhook=${hook}&webhook_events_filter=completed`, {
      n: 1,
    })).json();
  const both = await (await post(`${server.url}/api?webhook=${hook}&webhook_events_filter=start,completed`, {
    n: 2,
  })).json();
  await eventually(
    "both completed events",
    () => target.delivered.filter((d) => d.status === "completed").length === 2,
  );
  const first = target.delivered.find((d) => d.id === completedOnly.id && d.status === "completed");
  assert.deepEqual(first?.result, { n: 1 });
  assert.equal(target.tries.get(`${completedOnly.id}:completed`), 3);
  assert.equal(
    target.tries.get(`${completedOnly.id}:in_progress`),
    undefined,
    "no start event was asked for",
  );
  await eventually(
    "the start event",
    () => target.delivered.some((d) => d.id === both.id && d.status === "in_progress"),
  );
  assert.ok(server.lines.some((l) => l.includes("webhook try failed")));
});

Deno.test("webhook: a target that never answers blocks nothing; a malformed webhook is refused", async () => {
  const hanging = Promise.withResolvers<void>();
  const silent = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    await hanging.promise;
    return new Response(null, { status: 204 });
  });
  await using target = sink(0);
  await using project = await asyncProject();
  try {
    await using server = await startServer(project.path);
    const silentUrl = encodeURIComponent(`http://127.0.0.1:${silent.addr.port}/`);
    await post(`${server.url}/api?webhook=${silentUrl}`, { n: 1 });
    // Jobs after it complete and their webhooks arrive while the first one's hangs.
    const hook = encodeURIComponent(target.url);
    const later = await Promise.all(
      [2, 3, 4].map(async (n) => (await (await post(`${server.url}/api?webhook=${hook}`, { n })).json()).id),
    );
    await eventually(
      "the later webhooks",
      () => later.every((id) => target.delivered.some((d) => d.id === id && d.status === "completed")),
      5000,
    );
    for (
      const [query, message] of [
        ["webhook=ftp%3A%2F%2Fx", /must be an http:\/\/ or https:\/\/ URL/],
        [
          "webhook=http%3A%2F%2Fx&webhook_events_filter=done",
          /"done" is not one of start, output, logs, completed/,
        ],
        ["webhook_events_filter=completed", /without a webhook/],
      ] as const
    ) {
      const response = await post(`${server.url}/api?${query}`, { n: 9 });
      assert.equal(response.status, 400, query);
      assert.match((await response.json()).error, message);
    }
  } finally {
    hanging.resolve();
    await silent.shutdown();
  }
});
