/**
 * The console in a real browser: headless Chromium (Debian's, driven by
 * playwright-core) against a real server with real Python workers. A
 * screenshot of each page is saved under tests/artifacts/.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { post, ROOT, startServer, tempDir } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "tests", "artifacts");
const IRIS = join(ROOT, "examples", "iris-classifier");
const ESCAPING = join(ROOT, "tests", "fixtures", "console-escaping");
const KEY = "browser-test-key-0123456789abcdef";
const TIMEOUT_MS = 10_000;

/** A fresh browser profile, closed and removed on dispose. */
async function openBrowser(viewport = { width: 1280, height: 900 }) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run ./scripts/setup (installs Debian's chromium)`);
  }
  const profile = await tempDir("cortex-serve-chromium-");
  const context: BrowserContext = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
    viewport,
    timeout: TIMEOUT_MS,
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  return {
    context,
    async [Symbol.asyncDispose]() {
      await context.close();
      await profile[Symbol.asyncDispose]();
    },
  };
}

/** Console errors and failed requests of a page (a CSP violation is a console error). */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  return errors;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
}

// Chromium and its pipes belong to playwright-core, which keeps a few handles
// between calls; each test closes the browser itself.
const browserTest = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "console: the iris API shows ready, the sample from the form predicts iris-setosa",
  ...browserTest,
  async fn() {
    await using server = await startServer(IRIS);
    await using browser = await openBrowser();
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await page.goto(`${server.url}/`);

    const card = page.locator(".api-card", { has: page.getByRole("heading", { name: "classifier" }) });
    await card.locator(".badge", { hasText: "ready" }).waitFor();
    assert.match(await card.locator(".endpoint").innerText(), /POST \/iris\/classifier/);

    const body = page.getByLabel("Request body (JSON)");
    await page.waitForFunction(`document.getElementById("try-body").value.includes("sepal_length")`);
    assert.deepEqual(JSON.parse(await body.inputValue()), {
      sepal_length: 5.2,
      sepal_width: 3.6,
      petal_length: 1.4,
      petal_width: 0.3,
    });

    // Invalid JSON is flagged and not sent.
    await body.fill('{"sepal_length": 5.2,');
    await page.getByRole("button", { name: "Predict" }).click();
    assert.match(await page.locator("#try-body-error").innerText(), /^Invalid JSON/);
    assert.equal(await body.getAttribute("aria-invalid"), "true");
    assert.equal(await page.locator("#try-result").isHidden(), true);

    // Back to the sample, sent with the keyboard.
    await page.getByRole("button", { name: "Reset to sample" }).click();
    assert.equal(await body.getAttribute("aria-invalid"), null);
    await page.getByRole("button", { name: "Predict" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#try-output", { hasText: '"iris-setosa"' }).waitFor();
    assert.equal(await page.locator("#try-status").innerText(), "200 OK");
    const requestId = await page.locator("#try-request-id").innerText();
    assert.match(requestId, /^[0-9a-f-]{36}$/);
    assert.match(await page.locator("#try-latency").innerText(), /\d+(\.\d+)? (ms|s)$/);

    // The request shows in the recent activity, as do the worker's lines.
    await page.locator("#requests tbody tr", { hasText: requestId }).waitFor();
    await page.locator("#logs tbody tr", { hasText: "loaded model from iris_model.npz" }).waitFor();
    await page.locator(".api-card dd", { hasText: "1/1 ready" }).waitFor();

    await screenshot(page, "console.png");
    const phone = await browser.context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${server.url}/`);
    await phone.locator(".api-card .badge", { hasText: "ready" }).waitFor();
    const overflow = await phone.evaluate<number>(`document.documentElement.scrollWidth - window.innerWidth`);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
    await screenshot(phone, "console-phone.png");
    assert.deepEqual(errors, []);
  },
});

Deno.test({
  name:
    "console: asks for the API key, keeps it for the tab, and shows markup in predictions and logs as text",
  ...browserTest,
  async fn() {
    await using dir = await tempDir();
    const keys = join(dir.path, "keys");
    await Deno.writeTextFile(keys, `${KEY}\n`, { mode: 0o600 });
    await using server = await startServer(ESCAPING, { args: [`--api-key-file=${keys}`] });
    await using browser = await openBrowser();
    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    const urls: string[] = [];
    page.on("request", (request) => urls.push(request.url()));
    await page.goto(`${server.url}/`);

    const keyInput = page.getByLabel("API key", { exact: true });
    await keyInput.fill("not-the-key-but-long-enough");
    await keyInput.press("Enter");
    await page.locator("#key-message", { hasText: "not accepted" }).waitFor();
    await keyInput.fill(KEY);
    await page.getByRole("button", { name: "Use this key" }).click();
    await page.locator(".api-card .badge", { hasText: "ready" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("cortex-serve.api-key")), KEY);

    await page.waitForFunction(`document.getElementById("try-body").value.includes("bold?")`);
    await page.getByLabel("Request body (JSON)").press("Control+Enter");
    await page.locator("#try-status", { hasText: "200" }).waitFor();
    const output = JSON.parse(await page.locator("#try-output").innerText());
    assert.equal(
      output.html,
      '<script>window.__injected = 1</script><img src=x onerror="window.__injected = 2">',
    );
    await page.locator("#logs td.message", { hasText: "log line <script>" }).waitFor();

    // A request from another client shows in the table too.
    const res = await post(`${server.url}/markup/echo`, {}, {
      authorization: `Bearer ${KEY}`,
      "x-request-id": "from-another-client",
    });
    await res.body?.cancel();
    await page.locator("#requests td", { hasText: "from-another-client" }).waitFor();

    assert.equal(await page.evaluate(() => (globalThis as { __injected?: number }).__injected), undefined);
    assert.equal(await page.locator("#main script, #main img, #main b").count(), 0);
    assert.ok(urls.every((url) => url.startsWith(server.url) && !url.includes(KEY)), urls.join("\n"));

    // The key stays in the tab: a reload does not ask again; "Forget API key" does.
    await page.reload();
    await page.locator(".api-card .badge", { hasText: "ready" }).waitFor();
    await screenshot(page, "console-escaping.png");
    await page.getByRole("button", { name: "Forget API key" }).click();
    await page.locator("#key-message", { hasText: "The key was removed" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("cortex-serve.api-key")), null);
    assert.deepEqual(errors.filter((e) => !e.includes("401")), []);
  },
});
