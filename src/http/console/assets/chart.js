// A small SVG line chart: requests per second and mean latency per second
// over the last minute, each on its own vertical scale.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 80;
const PAD = 4;

/**
 * Builds an element in the SVG namespace with the given attributes.
 * @param {string} name
 * @param {Record<string, string>} attributes
 * @returns {SVGElement}
 */
function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

/**
 * The path of a series; `null` values break the line.
 * @param {readonly (number | null)[]} values
 * @param {number} max
 * @returns {string}
 */
export function pathOf(values, max) {
  const step = values.length > 1 ? (WIDTH - 2 * PAD) / (values.length - 1) : 0;
  const scale = max > 0 ? (HEIGHT - 2 * PAD) / max : 0;
  let path = "";
  let drawing = false;
  values.forEach((value, i) => {
    if (value === null) {
      drawing = false;
      return;
    }
    const x = (PAD + i * step).toFixed(1);
    const y = (HEIGHT - PAD - value * scale).toFixed(1);
    path += `${drawing ? "L" : "M"}${x} ${y} `;
    // A point with no neighbour gets a short dash so that it shows.
    const next = values[i + 1];
    if (!drawing && (next === undefined || next === null)) path += "h2 ";
    drawing = true;
  });
  return path.trim();
}

/**
 * Formats a number of milliseconds for people.
 * @param {number | null} ms
 * @returns {string}
 */
export function formatMs(ms) {
  if (ms === null) return "\u2013";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(ms >= 1 ? 1 : 2)} ms`;
}

/**
 * A figure with the chart and a caption naming each line and its maximum.
 * @param {{ rate: readonly number[], latency_ms: readonly (number | null)[] }} series
 * @returns {HTMLElement}
 */
export function activityChart(series) {
  const maxRate = Math.max(0, ...series.rate);
  const latencies = series.latency_ms.filter((v) => v !== null);
  const maxLatency = Math.max(0, ...latencies);
  const total = series.rate.reduce((a, b) => a + b, 0);

  const svg = svgElement("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
  });
  const summary = total === 0
    ? "No requests in the last minute"
    : `Last minute: ${total} requests, at most ${maxRate} per second; mean latency up to ${
      formatMs(maxLatency)
    }`;
  svg.setAttribute("aria-label", summary);
  for (const y of [PAD, HEIGHT / 2, HEIGHT - PAD]) {
    svg.append(
      svgElement("line", { class: "grid", x1: "0", x2: String(WIDTH), y1: String(y), y2: String(y) }),
    );
  }
  svg.append(svgElement("path", { class: "rate", d: pathOf(series.rate, maxRate) }));
  svg.append(svgElement("path", { class: "latency", d: pathOf(series.latency_ms, maxLatency) }));

  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  const rateKey = document.createElement("span");
  rateKey.className = "key-rate";
  rateKey.textContent = `requests/s (max ${maxRate})`;
  const latencyKey = document.createElement("span");
  latencyKey.className = "key-latency";
  latencyKey.textContent = `mean latency (max ${formatMs(latencies.length ? maxLatency : null)})`;
  const span = document.createElement("span");
  span.textContent = "last 60 s";
  caption.append(rateKey, latencyKey, span);
  figure.append(svg, caption);
  return figure;
}
