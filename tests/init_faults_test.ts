/**
 * Init faults through a real server: import errors, bad signatures, an
 * `init` that raises or hangs. The API answers 503 with `Retry-After`,
 * /healthz and / name the traceback's last line, the server keeps running,
 * and the API heals by itself (retry with backoff) or after a fix and SIGHUP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertNoWorkersLeft, makeProject, post, type ServerProcess, startServer } from "./_helpers.ts";
import { fixture } from "./_faults.ts";

const GOOD = "def predict(sample, metadata):\n    return 'ok'\n";

interface InitFault {
  readonly fixture: string;
  /** Matches the last error shown in /healthz, / and the log. */
  readonly error: RegExp;
  readonly args?: readonly string[];
  /** Heals by itself on a retry; otherwise the test fixes the file and sends SIGHUP. */
  readonly heals: boolean;
}

const INIT_FAULTS: readonly InitFault[] = [
  { fixture: "syntax_error", error: /^import failed: SyntaxError: .*line 4/, heals: false },
  {
    fixture: "no_predict",
    error:
      /^signature failed: inference\.py defines no predict function: add `def predict\(sample, metadata\):`/,
    heals: false,
  },
  {
    fixture: "wrong_arity",
    error:
      /^signature failed: inference\.py: predict must accept predict\(sample, metadata\); yours is predict\(sample\)/,
    heals: false,
  },
  {
    fixture: "init_raises",
    error: /^init failed: RuntimeError: model download failed \(attempt 1\)$/,
    heals: true,
  },
  {
    fixture: "slow_init",
    error: /^init did not finish within --init-timeout \(1 s\)$/,
    args: ["--init-timeout=1s"],
    heals: true,
  },
];

async function assertNotReady(server: ServerProcess, error: RegExp): Promise<void> {
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 503);
  const body = await health.json();
  assert.equal(body.ok, false);
  assert.match(body.apis.api.last_error, error);

  const index = await (await fetch(`${server.url}/`)).json();
  assert.match(index.apis[0].last_error, error);
  assert.equal(index.apis[0].replicas.ready, 0);

  const res = await post(`${server.url}/test/api`, {});
  assert.equal(res.status, 503);
  assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
  const refused = await res.json();
  assert.match(refused.error, /^Api api is not ready \(/);
  assert.equal(refused.api, "api");
}

for (const fault of INIT_FAULTS) {
  Deno.test(`init fault ${fault.fixture}: 503 with the cause, then ${fault.heals ? "heals" : "fixed by SIGHUP"}`, async () => {
    let stateDir = "";
    {
      await using project = await makeProject({ "inference.py": await fixture(fault.fixture) });
      await using server = await startServer(project.path, { args: fault.args ?? [], waitReady: false });
      stateDir = server.stateDir;
      const logged = await server.waitFor((r) => r.msg === "init failed", 10_000);
      assert.match(String(logged.error), fault.error);
      await assertNotReady(server, fault.error);
      await server.waitFor((r) => r.msg === "init failed; retrying" && r.retry_in_ms === 500);

      if (!fault.heals) {
        await Deno.writeTextFile(join(project.path, "inference.py"), GOOD);
        server.kill("SIGHUP");
      }
      // "api ready" is logged for the first version that serves, reloads included.
      await server.waitFor((r) => r.msg === "api ready", 15_000);
      const ok = await post(`${server.url}/test/api`, {});
      assert.equal(ok.status, 200);
      assert.equal(await ok.json(), "ok");
      const live = await fetch(`${server.url}/livez`);
      assert.equal(live.status, 200);
      await live.body?.cancel();
    }
    await assertNoWorkersLeft(stateDir);
  });
}
