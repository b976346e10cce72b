/**
 * A Cortex 0.35 `AsyncAPI` whose PythonPredictor takes its payload by
 * Content-Type: the job keeps the request's content type, query and headers,
 * the worker parses the payload from them as for a synchronous request, and
 * the job's result keeps the answer's own content type.
 */
import assert from "node:assert/strict";
import { makeProject, startServer } from "./_helpers.ts";
import { eventually } from "./_jobs.ts";

const CORTEX_035 = `# Cortex 0.35 (docs/workloads/async/configuration.md)
- name: shouter
  kind: AsyncAPI
  predictor:
    type: python
    path: shouter.py
`;

const SHOUTER = `class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload, query_params, request_id):
        if isinstance(payload, str):
            return payload.upper() + query_params.get("mark", "")
        if isinstance(payload, bytes):
            return {"bytes": len(payload), "request_id": request_id}
        return {"json": payload}
`;

async function finished(url: string): Promise<Record<string, unknown>> {
  let view: Record<string, unknown> = {};
  await eventually(`job ${url} to end`, async () => {
    view = await (await fetch(url)).json();
    return view.status === "completed" || view.status === "failed";
  }, 20_000);
  return view;
}

Deno.test("Cortex 0.35 AsyncAPI: text, bytes and JSON payloads run as jobs with their content types", async () => {
  await using project = await makeProject({ "cortex.yaml": CORTEX_035, "shouter.py": SHOUTER });
  await using server = await startServer(project.path);
  const api = `${server.url}/shouter`;

  const submit = async (body: BodyInit, contentType: string, query = "") => {
    const response = await fetch(`${api}${query}`, {
      method: "POST",
      body,
      headers: { "content-type": contentType },
    });
    assert.equal(response.status, 202, await response.clone().text());
    const { id } = await response.json();
    assert.equal(typeof id, "string");
    return { id: id as string, url: `${api}/${id}` };
  };

  const text = await submit("quiet please", "text/plain; charset=utf-8", "?mark=!");
  const bytes = await submit(new Uint8Array([1, 2, 3, 4]), "application/octet-stream");
  const json = await submit(JSON.stringify({ a: 1 }), "application/json");

  const textView = await finished(text.url);
  assert.equal(textView.status, "completed", JSON.stringify(textView));
  assert.equal(textView.result, "QUIET PLEASE!");
  assert.match(String(textView.result_content_type), /^text\/plain/);

  const bytesView = await finished(bytes.url);
  assert.equal(bytesView.status, "completed", JSON.stringify(bytesView));
  assert.deepEqual(bytesView.result, { bytes: 4, request_id: bytes.id });

  const jsonView = await finished(json.url);
  assert.deepEqual(jsonView.result, { json: { a: 1 } });
});
