/**
 * The documentation holds together: every relative link and anchor in
 * README.md and docs/*.md points at a file of the repository and, for a
 * `#fragment`, at a heading of that page (GitHub's slugs), so moving a section
 * cannot silently break a link. Every docs page is linked from the README, and
 * the README stays a short read.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { ROOT } from "./_helpers.ts";

/** The most lines README.md may have: a newcomer reads it in five minutes. */
const README_MAX_LINES = 300;

/** Markdown files checked, repository-relative: README.md and docs/*.md. */
function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs")).filter((name) => name.endsWith(".md")).sort();
  return ["README.md", ...docs.map((name) => `docs/${name}`)];
}

/** The text outside fenced code blocks, fence lines blanked so line numbers stay. */
function withoutFences(text: string): string {
  let fence: string | undefined;
  return text.split("\n").map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker !== undefined) {
      fence = marker;
      return "";
    }
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return "";
    }
    return line;
  }).join("\n");
}

/** The text with inline code spans removed (they may hold brackets that are not links). */
function withoutCodeSpans(text: string): string {
  return text.replace(/(`+)[\s\S]*?\1/g, "");
}

/**
 * GitHub's anchor of a heading: inline code and link markup reduced to their
 * text, lower-cased, everything but letters, digits, spaces, `-` and `_`
 * dropped, each space a `-`.
 */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a page's ATX headings, duplicates numbered as GitHub does (`x`, `x-1`, …). */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const line of withoutFences(text).split("\n")) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** Link targets of a page: inline links and images, and reference definitions. */
function linkTargets(text: string): string[] {
  const prose = withoutCodeSpans(withoutFences(text));
  const inline = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const references = [...prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]!);
  return [...inline, ...references];
}

/** What is wrong with one link of `file` (repository-relative), or `undefined` when it resolves. */
function checkLink(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:, …
  const hash = target.indexOf("#");
  const path = decodeURI(hash < 0 ? target : target.slice(0, hash));
  const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const resolved = path === ""
    ? file
    : relative(ROOT, path.startsWith("/") ? join(ROOT, path) : join(ROOT, dirname(file), path));
  if (resolved.startsWith("..")) return `${target}: points outside the repository`;
  if (!existsSync(join(ROOT, resolved))) {
    return `${target}: ${resolved} does not exist`;
  }
  if (fragment === undefined) return undefined;
  if (!resolved.endsWith(".md")) return `${target}: an anchor into a file that is not markdown`;
  const known = anchors(readFileSync(join(ROOT, resolved), "utf8"));
  return known.has(fragment) ? undefined : `${target}: ${resolved} has no heading with anchor #${fragment}`;
}

Deno.test("docs: the slug of a heading is GitHub's anchor", () => {
  assert.equal(slug("What happens when your code fails"), "what-happens-when-your-code-fails");
  assert.equal(slug("`serve` options"), "serve-options");
  assert.equal(slug("/mnt/project"), "mntproject");
  assert.equal(slug("Cortex 0.14–0.38 projects"), "cortex-014038-projects");
  assert.equal(slug("requirements.txt"), "requirementstxt");
  assert.equal(slug("See [Limits](limits.md)"), "see-limits");
});

Deno.test("docs: duplicate headings and headings inside code blocks", () => {
  const page = "# A\n\n## Batching\n\n```sh\n# not a heading\n```\n\n## Batching\n";
  assert.deepEqual([...anchors(page)], ["a", "batching", "batching-1"]);
  assert.deepEqual(linkTargets("[a](x.md) `[b](y.md)`\n\n```\n[c](z.md)\n```\n[d]: w.md\n"), [
    "x.md",
    "w.md",
  ]);
});

Deno.test("docs: a broken link or anchor is reported", () => {
  assert.equal(checkLink("README.md", "docs/configuration.md#staging"), undefined);
  assert.match(checkLink("README.md", "docs/configuration.md#no-such-section") ?? "", /no heading/);
  assert.match(checkLink("README.md", "docs/no-such-page.md") ?? "", /does not exist/);
  assert.match(checkLink("docs/http.md", "#nowhere") ?? "", /docs\/http\.md has no heading/);
  assert.equal(checkLink("docs/http.md", "../examples/iris-classifier"), undefined);
  assert.equal(checkLink("docs/http.md", "https://example.com/#x"), undefined);
});

Deno.test("docs: every relative link and anchor in README.md and docs/*.md resolves", () => {
  const broken: string[] = [];
  for (const file of markdownFiles()) {
    for (const target of linkTargets(readFileSync(join(ROOT, file), "utf8"))) {
      const problem = checkLink(file, target);
      if (problem !== undefined) broken.push(`${file}: ${problem}`);
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("docs: every docs page is linked from the README, which stays short", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const linked = new Set(
    linkTargets(readme).map((target) => target.split("#")[0]!).filter((path) => path.startsWith("docs/")),
  );
  const unlinked = markdownFiles().filter((file) => file !== "README.md" && !linked.has(file));
  assert.deepEqual(unlinked, [], "docs pages the README does not link");
  const lines = readme.split("\n").length - 1;
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines, at most ${README_MAX_LINES}`);
});
