/** Helpers shared by the fault tests: fixture files and health polling. */
import { join } from "node:path";
import { delay, ROOT } from "./_helpers.ts";

const FIXTURES = join(ROOT, "tests", "fixtures", "faults");

/** Reads the misbehaving inference file `tests/fixtures/faults/<name>.py`. */
export function fixture(name: string): Promise<string> {
  return Deno.readTextFile(join(FIXTURES, `${name}.py`));
}

/** Polls `<url>/healthz` until it answers 200; throws after `timeoutMs`. */
export async function waitHealthy(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/healthz`);
    await res.body?.cancel();
    if (res.status === 200) return;
    await delay(50);
  }
  throw new Error(`${url}/healthz did not answer 200 within ${timeoutMs} ms`);
}
