/**
 * Securing a deployment, through a real server process and real Python
 * workers: API keys (with rotation on SIGHUP), CORS, what the open probes
 * reveal, the worker's environment, and startup refusals.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, ROOT, startServer, tempDir } from "./_helpers.ts";

const KEY = "k3y-0f-the-test-suite-0123456789";
const OTHER = "0ther-key-0f-the-test-suite-0123";
const NEAR = KEY.slice(0, -1) + "8";

const ECHO = `def predict(sample, metadata):\n    return sample\n`;
const TWO_APIS = `- kind: deployment
  name: test
- kind: api
  name: api
  python:
    inference: inference.py
- kind: api
  name: broken
  python:
    inference: broken.py
`;
const BROKEN =
  `def init(metadata):\n    raise RuntimeError("cannot reach db at postgres://admin:hunter2@db")\n` +
  `def predict(sample, metadata):\n    return None\n`;

async function writeKeys(path: string, ...keys: string[]): Promise<void> {
  await Deno.writeTextFile(path, `# keys\n${keys.join("\n")}\n`, { mode: 0o600 });
}

function call(url: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: "POST", body: '{"x": 1}', ...init, headers });
}

/** Runs `serve` expecting it to refuse to start; returns its exit code and stderr. */
async function serveRefused(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  await using state = await tempDir("cortex-serve-state-");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--frozen",
      join(ROOT, "main.ts"),
      "serve",
      ...args,
      "--port=0",
      `--python=${PYTHON}`,
      `--state-dir=${state.path}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("api keys: 401 without, with a wrong or a near key; 200 with a good one; probes stay open", async () => {
  await using project = await makeProject({
    "cortex.yaml": TWO_APIS,
    "inference.py": ECHO,
    "broken.py": BROKEN,
  });
  await using dir = await tempDir();
  const keyFile = join(dir.path, "keys");
  await writeKeys(keyFile, KEY);
  await using server = await startServer(project.path, {
    args: [`--api-key-file=${keyFile}`],
    waitReady: false,
  });
  await server.waitFor((r) => r.msg === "api ready" && r.api === "api");
  const api = `${server.url}/test/api`;

  for (const headers of [{}, { "x-api-key": OTHER }, { authorization: `Bearer ${NEAR}` }]) {
    const res = await call(api, headers);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="cortex-serve"');
    const body = await res.json();
    assert.deepEqual(Object.keys(body).sort(), ["api", "error", "request_id"]);
    assert.equal(
      body.error,
      "Missing or invalid API key: send it as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'",
    );
    assert.equal(body.request_id, res.headers.get("x-request-id"));
  }
  for (const headers of [{ authorization: `Bearer ${KEY}` }, { "x-api-key": KEY }]) {
    const res = await call(api, headers);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { x: 1 });
  }

  for (const path of ["/", "/test/api", "/metrics", "/no/such/route"]) {
    const res = await fetch(`${server.url}${path}`);
    assert.equal(res.status, 401, path);
    await res.body?.cancel();
  }
  const metrics = await fetch(`${server.url}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^# (HELP|TYPE) /m);
  const index = await fetch(`${server.url}/`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal((await index.json()).deployment, "test");

  const live = await fetch(`${server.url}/livez`);
  assert.deepEqual([live.status, await live.json()], [200, { ok: true }]);
  await server.waitFor((r) => r.msg === "init failed" && r.api === "broken");
  const health = await fetch(`${server.url}/healthz`);
  assert.deepEqual([health.status, await health.json()], [503, { ok: false }]);

  const logged = await server.waitFor((r) => r.msg === "request" && r.status === 200);
  assert.match(String(logged.key_id), /^[0-9a-f]{8}$/);
  const denied = await server.waitFor((r) => r.msg === "unauthorized" && r.reason === "unknown key");
  assert.equal(denied.path, "/test/api");
  assert.ok(server.lines.every((line) => !line.includes(KEY) && !line.includes(NEAR)), "a key was logged");
});

Deno.test("api keys: SIGHUP rotates keys; an emptied file keeps the previous keys", async () => {
  await using project = await makeProject({ "inference.py": ECHO });
  await using dir = await tempDir();
  const keyFile = join(dir.path, "keys");
  await writeKeys(keyFile, KEY);
  await using server = await startServer(project.path, {
    waitReady: false,
    env: { CORTEX_API_KEYS_FILE: keyFile },
  });
  await server.waitFor((r) => r.msg === "api ready");
  const api = `${server.url}/test/api`;
  assert.equal((await call(api, { "x-api-key": KEY })).status, 200);

  await writeKeys(keyFile, OTHER);
  server.kill("SIGHUP");
  await server.waitFor((r) => r.msg === "api keys reloaded");
  const old = await call(api, { "x-api-key": KEY });
  assert.equal(old.status, 401);
  await old.body?.cancel();
  const rotated = await call(api, { authorization: `Bearer ${OTHER}` });
  assert.equal(rotated.status, 200);
  await rotated.body?.cancel();

  await Deno.writeTextFile(keyFile, "# all gone\n");
  server.kill("SIGHUP");
  const failed = await server.waitFor((r) =>
    r.msg === "api keys not reloaded, the previous keys stay in effect"
  );
  assert.match(String(failed.error), /holds no key/);
  const still = await call(api, { "x-api-key": OTHER });
  assert.equal(still.status, 200);
  await still.body?.cancel();
});

Deno.test("cors: * by default with preflight before auth; a list echoes only listed origins; none is off", async () => {
  await using project = await makeProject({ "inference.py": ECHO });
  await using dir = await tempDir();
  const keyFile = join(dir.path, "keys");
  await writeKeys(keyFile, KEY);
  {
    await using server = await startServer(project.path, {
      args: [`--api-key-file=${keyFile}`],
      waitReady: false,
    });
    await server.waitFor((r) => r.msg === "api ready");
    const api = `${server.url}/test/api`;
    const preflight = await fetch(api, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.equal(preflight.headers.get("access-control-allow-methods"), "GET,POST,OPTIONS");
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization.*content-type/);
    assert.equal(preflight.headers.get("access-control-max-age"), "600");
    await preflight.body?.cancel();

    const denied = await call(api, { origin: "https://app.example.com" });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get("access-control-allow-origin"), "*");
    await denied.body?.cancel();
    const ok = await call(api, { origin: "https://app.example.com", "x-api-key": KEY });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), "*");
    assert.match(ok.headers.get("access-control-expose-headers") ?? "", /x-request-id/);
    await ok.body?.cancel();
  }
  {
    await using server = await startServer(project.path, {
      args: ["--cors-origin=https://app.example.com", "--cors-origin", "http://localhost:3000"],
    });
    const api = `${server.url}/test/api`;
    const listed = await call(api, { origin: "http://localhost:3000" });
    assert.equal(listed.headers.get("access-control-allow-origin"), "http://localhost:3000");
    assert.match(listed.headers.get("vary") ?? "", /origin/i);
    await listed.body?.cancel();
    const other = await call(api, { origin: "https://evil.example" });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    await other.body?.cancel();
  }
  {
    await using server = await startServer(project.path, { args: ["--cors-origin=none"] });
    const api = `${server.url}/test/api`;
    const res = await call(api, { origin: "https://app.example.com" });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    await res.body?.cancel();
    const preflight = await fetch(api, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 405);
    await preflight.body?.cancel();
  }
});

Deno.test("worker environment: server secrets stay out, the allow-list and the API's env get in", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- kind: deployment
  name: test
- kind: api
  name: api
  python:
    inference: inference.py
    env:
      MODEL_FLAVOUR: vanilla
`,
    "inference.py": `import os\ndef predict(sample, metadata):\n    return dict(os.environ)\n`,
  });
  await using dir = await tempDir();
  const keyFile = join(dir.path, "keys");
  await writeKeys(keyFile, KEY);
  await using server = await startServer(project.path, {
    waitReady: false,
    env: {
      SERVER_SECRET: "do-not-leak",
      AWS_SECRET_ACCESS_KEY: "do-not-leak",
      CORTEX_API_KEYS_FILE: keyFile,
      CORTEX_API_KEY: KEY,
      PIP_INDEX_URL: "https://pypi.internal/simple",
      CUDA_CACHE_PATH: "/var/cache/cuda",
      CORTEX_FEATURE: "on",
      LC_ALL: "C.UTF-8",
      MALLOC_ARENA_MAX: "2",
    },
  });
  await server.waitFor((r) => r.msg === "api ready");
  const res = await call(`${server.url}/test/api`, { "x-api-key": KEY });
  assert.equal(res.status, 200);
  const env: Record<string, string> = await res.json();
  assert.equal(env.SERVER_SECRET, undefined);
  assert.equal(env.AWS_SECRET_ACCESS_KEY, undefined);
  assert.equal(env.CORTEX_API_KEYS_FILE, undefined);
  assert.equal(env.CORTEX_API_KEY, undefined);
  assert.ok(Object.values(env).every((value) => !value.includes("do-not-leak") && !value.includes(KEY)));
  assert.equal(env.PIP_INDEX_URL, "https://pypi.internal/simple");
  assert.equal(env.CUDA_CACHE_PATH, "/var/cache/cuda");
  assert.equal(env.CORTEX_FEATURE, "on");
  assert.equal(env.LC_ALL, "C.UTF-8");
  assert.equal(env.MODEL_FLAVOUR, "vanilla");
  assert.equal(env.MALLOC_ARENA_MAX, "2");
  assert.equal(env.MALLOC_TRIM_THRESHOLD_, String(32 * 1024 * 1024), "glibc keeps a large request's memory");
  assert.equal(env.PATH, Deno.env.get("PATH"));
  assert.ok(env.CORTEX_PROJECT_DIR?.startsWith(server.stateDir));
  const allowed =
    /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|TZ|TMPDIR|PYTHONUNBUFFERED|PYTHONMALLOC|MALLOC_\w+|MODEL_FLAVOUR|OMP_NUM_THREADS|MKL_NUM_THREADS|OPENBLAS_\w+|LC_\w+|PIP_\w+|CUDA_\w+|CORTEX_\w+)$/;
  const unexpected = Object.keys(env).filter((name) => !allowed.test(name) && name !== "LC_CTYPE");
  assert.deepEqual(unexpected, []);
});

Deno.test("startup refusals: an empty key file, a .. path in cortex.yaml", async () => {
  await using project = await makeProject({ "inference.py": ECHO });
  await using dir = await tempDir();
  const keyFile = join(dir.path, "keys");
  await Deno.writeTextFile(keyFile, "# to be filled\n");
  const empty = await serveRefused([project.path, `--api-key-file=${keyFile}`]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /^error: The API key file ".*keys" holds no key: write one key per line/m);

  await using escaping = await makeProject({
    "cortex.yaml":
      `- kind: deployment\n  name: test\n- kind: api\n  name: api\n  python:\n    inference: ../../etc/passwd\n`,
  });
  const dotdot = await serveRefused([escaping.path]);
  assert.equal(dotdot.code, 1);
  assert.match(
    dotdot.stderr,
    /python\.inference.*must not contain a "\.\." segment, got "\.\.\/\.\.\/etc\/passwd"/,
  );
});

Deno.test("staging: a symlink to /etc is skipped and logged; state and staged dirs are owner-only", async () => {
  await using project = await makeProject({ "inference.py": ECHO });
  await Deno.symlink("/etc", join(project.path, "etc"));
  await Deno.symlink("/etc/hostname", join(project.path, "hostname"));
  await using dir = await tempDir();
  const stateDir = join(dir.path, "fresh", "state");
  await using server = await startServer(project.path, { args: [`--state-dir=${stateDir}`] });
  const skipped = await server.waitFor((r) => r.msg === "not staged" && r.path === "etc");
  assert.equal(skipped.reason, "symlink-outside-project");
  const staged = await server.waitFor((r) => r.msg === "project staged");
  const names = [];
  for await (const entry of Deno.readDir(String(staged.dir))) names.push(entry.name);
  assert.deepEqual(names.filter((name) => name !== "__pycache__").sort(), ["inference.py"]);
  assert.equal((await Deno.stat(stateDir)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(String(staged.dir))).mode! & 0o777, 0o700);
});
