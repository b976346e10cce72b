// The console page: polls the server's status, offers a form to call each
// API and lists recent requests and log lines. Everything the server or a
// prediction says is put on the page as text (textContent), never as HTML.

import { activityChart, formatMs } from "./chart.js";

const KEY_STORAGE = "cortex-serve.api-key";
const POLL_MS = 2000;

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const els = {
  deployment: byId("deployment"),
  connection: byId("connection"),
  updated: byId("updated"),
  forgetKey: /** @type {HTMLButtonElement} */ (byId("forget-key")),
  keySection: byId("key-section"),
  keyMessage: byId("key-message"),
  keyForm: /** @type {HTMLFormElement} */ (byId("key-form")),
  keyInput: /** @type {HTMLInputElement} */ (byId("key-input")),
  content: byId("content"),
  apis: byId("apis"),
  tryForm: /** @type {HTMLFormElement} */ (byId("try-form")),
  tryApi: /** @type {HTMLSelectElement} */ (byId("try-api")),
  tryBody: /** @type {HTMLTextAreaElement} */ (byId("try-body")),
  tryBodyError: byId("try-body-error"),
  trySend: /** @type {HTMLButtonElement} */ (byId("try-send")),
  tryReset: /** @type {HTMLButtonElement} */ (byId("try-reset")),
  tryResult: byId("try-result"),
  tryStatus: byId("try-status"),
  tryLatency: byId("try-latency"),
  tryRequestId: byId("try-request-id"),
  tryOutput: byId("try-output"),
  requests: /** @type {HTMLTableSectionElement} */ (document.querySelector("#requests tbody")),
  requestsEmpty: byId("requests-empty"),
  logs: /** @type {HTMLTableSectionElement} */ (document.querySelector("#logs tbody")),
  logsEmpty: byId("logs-empty"),
};

/** @type {Record<string, string | null>} */
let samples = {};
/** Edited request bodies by API name. @type {Map<string, string>} */
const drafts = new Map();
/** Endpoints by API name. @type {Map<string, string>} */
const endpoints = new Map();
let apiNames = "";
let timer = 0;
let polling = false;

/** @returns {string | null} */
function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

/** @returns {Record<string, string>} */
function authHeaders() {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/**
 * A new element with text content and an optional class.
 * @param {string} tag
 * @param {string} text
 * @param {string} [className]
 */
function el(tag, text, className) {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  return element;
}

/** @param {number} ms */
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** @param {string} message */
function askForKey(message) {
  clearTimeout(timer);
  els.content.hidden = true;
  els.keySection.hidden = false;
  els.forgetKey.hidden = true;
  els.keyMessage.textContent = message;
  setConnection("Waiting for an API key", false);
  els.updated.textContent = "";
  els.keyInput.focus();
}

/**
 * Shows the connection state; only a change of state is announced.
 * @param {string} state
 * @param {boolean} offline
 */
function setConnection(state, offline) {
  if (els.connection.textContent !== state) els.connection.textContent = state;
  els.connection.parentElement?.classList.toggle("offline", offline);
  els.updated.textContent = offline ? "" : `· updated ${clock(Date.now())}`;
}

async function poll() {
  if (polling) return;
  polling = true;
  clearTimeout(timer);
  try {
    const res = await fetch("/_console/data", { headers: authHeaders(), cache: "no-store" });
    if (res.status === 401) {
      const hadKey = storedKey() !== null;
      sessionStorage.removeItem(KEY_STORAGE);
      const message = hadKey
        ? "That key was not accepted. Enter another API key."
        : "This server asks for an API key.";
      askForKey(message);
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
    setConnection("Live", false);
  } catch (error) {
    setConnection(`Server unreachable (${error instanceof Error ? error.message : error}); retrying`, true);
  } finally {
    polling = false;
  }
  if (!document.hidden && els.keySection.hidden) timer = setTimeout(poll, POLL_MS);
}

/** @param {any} data */
function render(data) {
  els.keySection.hidden = true;
  els.content.hidden = false;
  els.forgetKey.hidden = storedKey() === null;
  els.deployment.textContent = data.deployment;
  document.title = `${data.deployment} · cortex-serve console`;
  renderApis(data.apis);
  els.apis.append(...(data.splitters ?? []).map(splitterCard));
  renderRequests(data.requests);
  renderLogs(data.logs);
}

/** @param {any[]} apis */
function renderApis(apis) {
  els.apis.replaceChildren(...apis.map(apiCard));
  const names = apis.map((a) => a.name).join("\n");
  if (names === apiNames) return;
  apiNames = names;
  endpoints.clear();
  for (const api of apis) endpoints.set(api.name, api.endpoint);
  const selected = els.tryApi.value;
  els.tryApi.replaceChildren(...apis.map((api) => {
    const option = el("option", `${api.name} (${api.endpoint})`);
    option.value = api.name;
    return option;
  }));
  if (endpoints.has(selected)) els.tryApi.value = selected;
  void loadSamples();
}

/** @param {any} api */
function apiCard(api) {
  const card = document.createElement("article");
  card.className = "api-card";
  const head = document.createElement("div");
  head.className = "api-head";
  const title = el("h3", api.name);
  // The server names the state (`state_label`); console.css colours every state it has.
  const stateLabel = String(api.state_label ?? api.state);
  const badge = el("span", stateLabel, `badge state-${api.state}`);
  badge.setAttribute("aria-label", `state: ${stateLabel}`);
  head.append(title, badge);
  const endpoint = el("p", "", "endpoint");
  endpoint.append(el("code", `POST ${api.endpoint}`));

  const stats = document.createElement("dl");
  stats.className = "stats";
  const minute = api.last_minute;
  /** @type {[string, string][]} */
  const items = [
    ["Replicas", `${api.replicas.ready}/${api.replicas.total} ready`],
    ["Requests", String(api.requests)],
    ["Errors 4xx / 5xx", `${api.status_4xx} / ${api.status_5xx}`],
    ["p50 (1 min)", formatMs(minute.p50_ms)],
    ["p99 (1 min)", formatMs(minute.p99_ms)],
    ["Queue / in flight", `${api.queue} / ${api.in_flight}`],
  ];
  if (api.jobs) items.push(["Jobs queued / running", `${api.jobs.in_queue} / ${api.jobs.in_progress}`]);
  for (const [label, value] of items) {
    const item = document.createElement("div");
    item.append(el("dt", label), el("dd", value));
    stats.append(item);
  }
  card.append(head, endpoint, stats);
  if (api.last_error) card.append(el("p", `Last error: ${api.last_error}`, "last-error"));
  card.append(activityChart(minute));
  return card;
}

/** A TrafficSplitter: its endpoint and each API's share. @param {any} splitter */
function splitterCard(splitter) {
  const card = document.createElement("article");
  card.className = "api-card";
  const head = document.createElement("div");
  head.className = "api-head";
  const state = splitter.status === "ready" ? "ready" : "starting";
  const badge = el("span", `splitter · ${splitter.status}`, `badge state-${state}`);
  badge.setAttribute("aria-label", `traffic splitter, ${splitter.status}`);
  head.append(el("h3", splitter.name), badge);
  const endpoint = el("p", "", "endpoint");
  endpoint.append(el("code", `POST ${splitter.endpoint}`));
  const shares = document.createElement("dl");
  shares.className = "stats";
  for (const target of splitter.apis) {
    const item = document.createElement("div");
    const share = target.shadow ? `${target.weight}% mirrored` : `${target.weight}%`;
    item.append(el("dt", target.api), el("dd", `${share} · ${target.status}`));
    shares.append(item);
  }
  card.append(head, endpoint, shares);
  return card;
}

/** @param {any[]} requests */
function renderRequests(requests) {
  els.requestsEmpty.hidden = requests.length > 0;
  els.requests.replaceChildren(...requests.map((r) => {
    const row = document.createElement("tr");
    if (r.status >= 500) row.className = "row-error";
    else if (r.status >= 400) row.className = "row-warn";
    row.append(
      el("td", clock(r.time)),
      el("td", r.api),
      el("td", String(r.status)),
      el("td", formatMs(r.latency_ms)),
      el("td", r.request_id, "mono"),
    );
    return row;
  }));
}

/** @param {any[]} logs */
function renderLogs(logs) {
  els.logsEmpty.hidden = logs.length > 0;
  els.logs.replaceChildren(...logs.map((line) => {
    const row = document.createElement("tr");
    if (line.level === "error") row.className = "row-error";
    else if (line.level === "warn") row.className = "row-warn";
    const source = line.api === null
      ? "server"
      : line.replica === null
      ? line.api
      : `${line.api} #${line.replica}`;
    const message = el("td", line.message, "message");
    if (line.detail) message.append(" ", el("span", line.detail, "detail"));
    row.append(el("td", clock(line.time)), el("td", line.level), el("td", source), message);
    return row;
  }));
}

async function loadSamples() {
  try {
    const res = await fetch("/_console/samples", { headers: authHeaders(), cache: "no-store" });
    if (res.ok) samples = await res.json();
  } catch {
    // The form still works without samples.
  }
  if (!drafts.has(els.tryApi.value)) showDraft();
}

function sampleOf(/** @type {string} */ api) {
  return samples[api] ?? "{}\n";
}

function showDraft() {
  els.tryBody.value = drafts.get(els.tryApi.value) ?? sampleOf(els.tryApi.value);
  validate();
}

/** Checks the body; returns the error message or "" when it is valid JSON. */
function validate() {
  let message = "";
  try {
    JSON.parse(els.tryBody.value);
  } catch (error) {
    message = `Invalid JSON: ${error instanceof Error ? error.message : error}`;
  }
  els.tryBodyError.textContent = message;
  if (message) els.tryBody.setAttribute("aria-invalid", "true");
  else els.tryBody.removeAttribute("aria-invalid");
  return message;
}

async function predict() {
  if (validate()) {
    els.tryBody.focus();
    return;
  }
  const api = els.tryApi.value;
  const endpoint = endpoints.get(api);
  if (endpoint === undefined) return;
  els.trySend.disabled = true;
  const started = performance.now();
  try {
    const res = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: els.tryBody.value,
    });
    const text = await res.text();
    const ms = performance.now() - started;
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Not JSON: show the text as it came.
    }
    showResult(
      `${res.status} ${res.statusText}`.trim(),
      res.ok,
      formatMs(ms),
      res.headers.get("x-request-id") ?? "\u2013",
      shown,
    );
  } catch (error) {
    showResult(
      "no answer",
      false,
      "\u2013",
      "\u2013",
      String(error instanceof Error ? error.message : error),
    );
  } finally {
    els.trySend.disabled = false;
  }
  void poll();
}

/**
 * @param {string} status
 * @param {boolean} ok
 * @param {string} latency
 * @param {string} requestId
 * @param {string} body
 */
function showResult(status, ok, latency, requestId, body) {
  els.tryResult.hidden = false;
  els.tryStatus.textContent = status;
  els.tryStatus.className = ok ? "status-ok" : "status-error";
  els.tryLatency.textContent = latency;
  els.tryRequestId.textContent = requestId;
  els.tryOutput.textContent = body;
  els.tryOutput.className = ok ? "output" : "output status-error";
}

els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = els.keyInput.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  els.keyInput.value = "";
  void poll();
});

els.forgetKey.addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  askForKey("The key was removed from this tab. Enter an API key to continue.");
});

els.tryForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void predict();
});

els.tryApi.addEventListener("change", showDraft);

els.tryBody.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void predict();
  }
});

els.tryBody.addEventListener("input", () => {
  drafts.set(els.tryApi.value, els.tryBody.value);
  validate();
});

els.tryReset.addEventListener("click", () => {
  drafts.delete(els.tryApi.value);
  showDraft();
  els.tryBody.focus();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) void poll();
});

void poll();
