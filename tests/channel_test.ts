/** The control channel's listening socket and the directory it lives in. */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { ChannelListener } from "../src/python/channel.ts";
import { tempDir } from "./_helpers.ts";

Deno.test("a socket path too long for sockaddr_un uses a temporary directory, removed with its last socket", async () => {
  await using dir = await tempDir();
  const deep = join(dir.path, "d".repeat(120));
  const first = ChannelListener.open(deep);
  const second = ChannelListener.open(deep);
  const fallback = ChannelListener.fallbackDir;
  assert.ok(fallback !== undefined);
  assert.equal(dirname(first.path), fallback);
  first.close();
  assert.ok((await Deno.stat(fallback)).isDirectory, "still in use by the second socket");
  second.close();
  await assert.rejects(Deno.stat(fallback), Deno.errors.NotFound);
  assert.equal(ChannelListener.fallbackDir, undefined);
});
