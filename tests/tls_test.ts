/**
 * HTTPS through a real server: a self-signed certificate from openssl, a
 * client that trusts only it, a certificate swapped on SIGHUP while a
 * request is in flight, and clear refusals of unusable files.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, ROOT, startServer, tempDir } from "./_helpers.ts";
import { makeCert } from "./_tls.ts";

const SLOW = `import time
def predict(sample, metadata):
    if sample.get("sleep"):
        print("sleeping", flush=True)
        time.sleep(sample["sleep"])
    return {"ok": True}
`;

async function predictOver(client: Deno.HttpClient, url: string, sample: unknown): Promise<Response> {
  return await fetch(url, { method: "POST", body: JSON.stringify(sample), client });
}

Deno.test("tls: predicts over HTTPS; SIGHUP swaps the certificate, in-flight requests finish", async () => {
  await using project = await makeProject({ "inference.py": SLOW });
  await using dir = await tempDir();
  const a = await makeCert(dir.path, "a");
  const b = await makeCert(dir.path, "b");
  const certFile = join(dir.path, "server.crt");
  const keyFile = join(dir.path, "server.key");
  await Deno.copyFile(a.certFile, certFile);
  await Deno.copyFile(a.keyFile, keyFile);
  await using server = await startServer(project.path, {
    args: [`--tls-cert=${certFile}`, `--tls-key=${keyFile}`],
    waitReady: false,
  });
  await server.waitFor((r) => r.msg === "api ready");
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const api = `${server.url}/test/api`;
  using trustsA = Deno.createHttpClient({ caCerts: [a.cert] });
  using trustsB = Deno.createHttpClient({ caCerts: [b.cert] });

  const first = await predictOver(trustsA, api, {});
  assert.deepEqual([first.status, await first.json()], [200, { ok: true }]);
  await assert.rejects(fetch(api.replace("https:", "http:"), { method: "POST", body: "{}" }));
  await assert.rejects(predictOver(trustsB, api, {}));

  using slowClient = Deno.createHttpClient({ caCerts: [a.cert] });
  const inFlight = predictOver(slowClient, api, { sleep: 1 });
  await server.waitFor((r) => r.msg === "sleeping");
  await Deno.copyFile(b.certFile, certFile);
  await Deno.copyFile(b.keyFile, keyFile);
  server.kill("SIGHUP");
  const reloaded = await server.waitFor((r) => r.msg === "tls reloaded");
  assert.match(String(reloaded.subject), /cortex-serve test b/);

  const slow = await inFlight;
  assert.deepEqual([slow.status, await slow.json()], [200, { ok: true }]);
  using freshB = Deno.createHttpClient({ caCerts: [b.cert] });
  const after = await predictOver(freshB, api, {});
  assert.deepEqual([after.status, await after.json()], [200, { ok: true }]);
  using freshA = Deno.createHttpClient({ caCerts: [a.cert] });
  await assert.rejects(predictOver(freshA, api, {}));

  // A mismatched pair on SIGHUP is refused and certificate b keeps serving.
  await Deno.copyFile(a.keyFile, keyFile);
  server.kill("SIGHUP");
  const refused = await server.waitFor((r) =>
    r.msg === "tls not reloaded, the previous certificate stays in effect"
  );
  assert.match(String(refused.error), /does not belong to the certificate/);
  using againB = Deno.createHttpClient({ caCerts: [b.cert] });
  const still = await predictOver(againB, api, {});
  assert.equal(still.status, 200);
  await still.body?.cancel();
});

Deno.test("tls: unreadable or mismatched files stop startup with a message naming them", async () => {
  await using project = await makeProject({ "inference.py": SLOW });
  await using dir = await tempDir();
  const a = await makeCert(dir.path, "a");
  const b = await makeCert(dir.path, "b");
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--frozen",
        join(ROOT, "main.ts"),
        "serve",
        project.path,
        "--port=0",
        `--python=${PYTHON}`,
        ...args,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const mismatch = await run([`--tls-cert=${a.certFile}`, `--tls-key=${b.keyFile}`]);
  assert.equal(mismatch.code, 1);
  assert.equal(
    mismatch.stderr.trim(),
    `error: The TLS key "${b.keyFile}" does not belong to the certificate "${a.certFile}": ` +
      "give the key the certificate was issued for",
  );
  const missing = join(dir.path, "missing.pem");
  const unreadable = await run([`--tls-cert=${missing}`, `--tls-key=${a.keyFile}`]);
  assert.equal(unreadable.code, 1);
  assert.match(unreadable.stderr, /^error: Cannot read ".*missing\.pem" \(--tls-cert\): .*: check the path/);
  const half = await run([`--tls-cert=${a.certFile}`]);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--tls-cert needs --tls-key/);
});
