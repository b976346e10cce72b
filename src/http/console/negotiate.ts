/**
 * Content negotiation for `GET /`: a browser gets the console page, an API
 * client the JSON it always got.
 *
 * @module
 */

/**
 * The quality an `Accept` header gives a media type (RFC 9110 §12.5.1): the
 * `q` of the most specific range that matches, 0 when none does.
 */
export function quality(accept: string, type: string): number {
  const [major] = type.split("/");
  let best = -1;
  let q = 0;
  for (const part of accept.split(",")) {
    const [range = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    const specificity = range === type ? 2 : range === `${major}/*` ? 1 : range === "*/*" ? 0 : -1;
    if (specificity <= best) continue;
    best = specificity;
    const qParam = params.find((p) => p.startsWith("q="));
    const value = qParam === undefined ? 1 : Number(qParam.slice(2));
    q = Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : 0;
  }
  return q;
}

/**
 * True when the request prefers `text/html` to `application/json`: a
 * browser's navigation does, `curl` (`*\/*`), `fetch` and a missing header
 * do not.
 */
export function prefersHtml(accept: string | null | undefined): boolean {
  if (accept === null || accept === undefined || !accept.includes("html")) return false;
  const html = quality(accept, "text/html");
  return html > 0 && html > quality(accept, "application/json");
}
