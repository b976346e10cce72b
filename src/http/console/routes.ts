/**
 * The console: a page for people at `GET /` (when the request prefers
 * HTML), its script, style and icon under `/_console/`, and the data behind
 * it. The page and its assets are embedded in the program (imported as
 * text) and need no API key; the data routes do, like every other route.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { AppEnv } from "../app_env.ts";
import { consoleData, type ConsoleSources, samples } from "./data.ts";
import { prefersHtml } from "./negotiate.ts";
import page from "./assets/index.html" with { type: "text" };
import script from "./assets/console.js" with { type: "text" };
import chart from "./assets/chart.js" with { type: "text" };
import style from "./assets/console.css" with { type: "text" };
import icon from "./assets/icon.svg" with { type: "text" };

/** Where the console's own routes live; no default endpoint can start with it. */
export const CONSOLE_PREFIX = "/_console";

/**
 * The page's policy: scripts, styles, images and requests from this origin
 * only, nothing inline, no framing.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const COMMON_HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

const ASSETS: ReadonlyMap<string, { readonly body: string; readonly type: string }> = new Map([
  [`${CONSOLE_PREFIX}/console.js`, { body: script, type: "text/javascript; charset=utf-8" }],
  [`${CONSOLE_PREFIX}/chart.js`, { body: chart, type: "text/javascript; charset=utf-8" }],
  [`${CONSOLE_PREFIX}/console.css`, { body: style, type: "text/css; charset=utf-8" }],
  [`${CONSOLE_PREFIX}/icon.svg`, { body: icon, type: "image/svg+xml" }],
]);

/**
 * True for the requests that need no API key: the page itself (`GET /`
 * preferring HTML) and its assets.
 */
export function isOpenConsoleRequest(method: string, path: string, headers: Headers): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  if (path === "/") return prefersHtml(headers.get("accept"));
  return ASSETS.has(path);
}

/** True when `GET /` should answer with the page rather than JSON. */
export function wantsConsolePage(c: Context<AppEnv>): boolean {
  return prefersHtml(c.req.header("accept"));
}

/** The page (with its Content-Security-Policy). */
export function consolePage(c: Context<AppEnv>): Response {
  return c.body(page, 200, {
    ...COMMON_HEADERS,
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": CONSOLE_CSP,
    "x-frame-options": "DENY",
    vary: "Accept",
  });
}

/** Adds the asset and data routes to `app`. */
export function addConsoleRoutes(app: Hono<AppEnv>, sources: ConsoleSources): void {
  for (const [path, asset] of ASSETS) {
    app.get(path, (c) => c.body(asset.body, 200, { ...COMMON_HEADERS, "content-type": asset.type }));
  }
  app.get(`${CONSOLE_PREFIX}/data`, (c) => {
    c.header("cache-control", "no-store");
    return c.json(consoleData(sources));
  });
  app.get(`${CONSOLE_PREFIX}/samples`, async (c) => {
    c.header("cache-control", "no-store");
    return c.json(await samples(sources.project));
  });
}
