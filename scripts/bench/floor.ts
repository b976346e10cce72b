/**
 * The floor of the benchmark: a bare `Deno.serve` that answers every POST
 * with the JSON body it got, no Python. Nothing in front of a Python worker
 * can be faster than this.
 *
 * Usage: deno run --allow-net scripts/bench/floor.ts PORT
 */
const port = Number(Deno.args[0] ?? "0");
const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (request) => {
  const body = await request.arrayBuffer();
  JSON.parse(new TextDecoder().decode(body));
  return new Response(body, { headers: { "content-type": "application/json" } });
});
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
