/**
 * An `s3://` predictor.model through `validate` and a real worker, against
 * a minimal S3-compatible endpoint on 127.0.0.1 (HEAD and GET of objects):
 * signed with credentials and reused while its ETag holds, anonymous
 * (unsigned) without credentials, and a failure that says what was tried.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, tempDir } from "./_helpers.ts";
import { runCli } from "./_cli.ts";

/** One request the endpoint saw: method, path, and whether it was signed. */
interface SeenRequest {
  readonly line: string;
  readonly signed: boolean;
}

/** A fake S3 endpoint serving `objects` (path → body), or refusing every request with 403 AccessDenied. */
function fakeS3(objects: Map<string, string>, refuse = false) {
  const requests: SeenRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push({ line: `${request.method} ${path}`, signed: request.headers.has("authorization") });
    if (refuse) {
      const xml = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>" +
        "<Message>Access Denied</Message></Error>";
      return new Response(request.method === "HEAD" ? null : xml, { status: 403 });
    }
    const body = objects.get(path);
    if (body === undefined) return new Response(null, { status: 404 });
    const headers = {
      etag: `"${body.length}-${body}"`,
      "content-length": String(body.length),
      "last-modified": new Date(0).toUTCString(),
    };
    return new Response(request.method === "HEAD" ? null : body, { headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    gets: () => requests.filter((r) => r.line.startsWith("GET")).length,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A HOME with ~/.aws/config (a region) and, when `credentials`, ~/.aws/credentials. */
async function awsHome(credentials: boolean) {
  const home = await tempDir();
  await Deno.mkdir(join(home.path, ".aws"));
  await Deno.writeTextFile(join(home.path, ".aws", "config"), "[default]\nregion = us-east-1\n");
  if (credentials) {
    await Deno.writeTextFile(
      join(home.path, ".aws", "credentials"),
      "[default]\naws_access_key_id = test\naws_secret_access_key = test\n",
    );
  }
  return home;
}

const PREDICTOR = `import os


def init(model_path, metadata):
    with open(model_path) as f:
        content = f.read()
    expected = os.environ["CORTEX_EXPECTED_MODEL"]
    if content != expected or not model_path.endswith("/weights.txt"):
        raise ValueError("model %s holds %r, expected %r" % (model_path, content, expected))


def predict(sample, metadata):
    return 1
`;

/** A project whose predictor checks that its model holds CORTEX_EXPECTED_MODEL. */
function modelProject(url: string) {
  return makeProject({
    "cortex.yaml": `- kind: deployment
  name: d
- kind: api
  name: api
  predictor:
    path: predictor.py
    model: ${url}
`,
    "predictor.py": PREDICTOR,
  });
}

/** Runs `validate` with workers whose HOME is `home` and whose S3 is `endpoint`. */
function validate(project: string, state: string, home: string, endpoint: string, expected: string) {
  // DENO_DIR keeps the runner's Deno cache, which would otherwise follow HOME.
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache");
  return runCli(["validate", project, `--python=${PYTHON}`, `--state-dir=${state}`], {
    env: {
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(cache, "deno"),
      HOME: home,
      CORTEX_S3_ENDPOINT_URL: endpoint,
      CORTEX_EXPECTED_MODEL: expected,
    },
  });
}

Deno.test("an s3:// model is downloaded signed before init, and reused while its ETag is unchanged", async () => {
  const objects = new Map([["/models-bucket/dir/weights.txt", "weights-v1"]]);
  await using s3 = fakeS3(objects);
  await using home = await awsHome(true);
  await using project = await modelProject("s3://models-bucket/dir/weights.txt");
  await using state = await tempDir();
  const run = (expected: string) => validate(project.path, state.path, home.path, s3.url, expected);
  const first = await run("weights-v1");
  assert.equal(first.code, 0, first.stderr);
  assert.equal(s3.gets(), 1, s3.requests.map((r) => r.line).join("\n"));
  assert.ok(s3.requests.every((r) => r.signed), "a request went unsigned despite credentials");
  const second = await run("weights-v1");
  assert.equal(second.code, 0, second.stderr);
  assert.equal(s3.gets(), 1, "the unchanged model was downloaded again");
  objects.set("/models-bucket/dir/weights.txt", "weights-v2");
  const third = await run("weights-v2");
  assert.equal(third.code, 0, third.stderr);
  assert.equal(s3.gets(), 2);
});

Deno.test("without AWS credentials an s3:// model of a public bucket is downloaded anonymously", async () => {
  await using s3 = fakeS3(new Map([["/public-bucket/weights.txt", "open-weights"]]));
  await using home = await awsHome(false);
  await using project = await modelProject("s3://public-bucket/weights.txt");
  await using state = await tempDir();
  const result = await validate(project.path, state.path, home.path, s3.url, "open-weights");
  assert.equal(result.code, 0, result.stderr);
  assert.equal(s3.gets(), 1, s3.requests.map((r) => r.line).join("\n"));
  assert.ok(s3.requests.every((r) => !r.signed), "a request was signed without credentials");
});

Deno.test("without AWS credentials a bucket that refuses anonymous requests fails init saying both were tried", async () => {
  await using s3 = fakeS3(new Map(), true);
  await using home = await awsHome(false);
  await using project = await modelProject("s3://private-bucket/weights.txt");
  await using state = await tempDir();
  const result = await validate(project.path, state.path, home.path, s3.url, "");
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /predictor\.model s3:\/\/private-bucket\/weights\.txt: boto3 found no AWS credentials, and the anonymous \(unsigned\) download failed: ClientError: .*403.*: if the bucket is not public, write ~\/\.aws\/credentials/,
  );
  assert.ok(s3.requests.length > 0 && s3.requests.every((r) => !r.signed));
});
