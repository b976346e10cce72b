import assert from "node:assert/strict";
import { memoryShortfall, parseMemAvailable } from "../src/cli/memory_check.ts";
import type { ResolvedApi } from "../src/config/types.ts";

function api(name: string, minReplicas: number, mem: string | undefined, memBytes: number | undefined) {
  return { name, compute: { minReplicas, mem, memBytes } } as unknown as ResolvedApi;
}

Deno.test("parseMemAvailable reads MemAvailable in kB as bytes", () => {
  const meminfo = "MemTotal:       16314064 kB\nMemFree:          812340 kB\nMemAvailable:    9876543 kB\n";
  assert.equal(parseMemAvailable(meminfo), 9876543 * 1024);
  assert.equal(parseMemAvailable("MemTotal: 1 kB\n"), undefined);
});

Deno.test("memoryShortfall sums min_replicas × mem and reports only when over the available memory", () => {
  const apis = [api("a", 2, "1Gi", 2 ** 30), api("b", 1, undefined, undefined), api("c", 3, "100M", 1e8)];
  const requested = 2 * 2 ** 30 + 3e8;
  assert.equal(memoryShortfall({ apis }, requested), undefined);
  assert.deepEqual(memoryShortfall({ apis }, requested - 1), {
    requestedBytes: requested,
    availableBytes: requested - 1,
    requests: ["a: 2 × 1Gi", "c: 3 × 100M"],
  });
  assert.equal(memoryShortfall({ apis: [api("b", 1, undefined, undefined)] }, 0), undefined);
});
