/** A throwaway `redis-server` (Debian's) on a free loopback port, for the shared job store's tests. */

/** A running Redis; dispose to stop it. */
export interface RedisServer extends AsyncDisposable {
  /** `redis://127.0.0.1:PORT/0` */
  readonly url: string;
}

/** Starts `redis-server` without persistence on a free port; resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const reader = child.stdout.getReader();
  const deadline = Date.now() + 10_000;
  while (!output.includes("Ready to accept connections")) {
    const { value, done } = await reader.read();
    if (done || Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`redis-server did not start:\n${output}`);
    }
    output += decoder.decode(value, { stream: true });
  }
  // Keep draining its log so it never blocks on a full pipe.
  const draining = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await draining;
    },
  };
}
