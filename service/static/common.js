// Shared helpers: safe DOM building (text nodes only, never innerHTML), the API key, API calls, formatting.

const KEY_STORAGE = "bylinecheck.apiKey";

/** Build an element. `attrs` are set with setAttribute (never event handlers); children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) throw new Error("el(): no inline handlers");
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

export function getKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

function setKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value); else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* storage disabled: the key lives only in the field */ }
}

/** Wire the key form; `onChange(key)` runs now (if a key is kept) and whenever the key changes. */
export function setupKeyForm(onChange) {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const status = document.getElementById("key-status");
  const show = () => {
    const key = getKey();
    status.textContent = key ? `A key ending in …${key.slice(-4)} is in use for this browser session.` : "No key yet.";
  };
  input.value = getKey();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    show();
    onChange(getKey());
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    setKey("");
    input.value = "";
    show();
    onChange("");
  });
  show();
  if (getKey()) onChange(getKey());
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Fetch JSON from the API with the kept key; throws ApiError with the service's {error: {code, message}}. */
export async function api(path, options = {}) {
  const key = getKey();
  if (!key) throw new ApiError(0, "no_key", "Enter your API key first.");
  const headers = { Accept: "application/json", Authorization: `Bearer ${key}`, ...(options.headers || {}) };
  let response;
  try {
    response = await fetch(path, { ...options, headers, credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "Could not reach the service. Check your connection and try again.");
  }
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const error = (body && body.error) || {};
  throw new ApiError(response.status, error.code || `http_${response.status}`,
    error.message || response.statusText || "request failed");
}

/** A sentence an editor can act on, for any ApiError (or other error). */
export function describeError(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err && err.message ? err.message : err}`;
  const detail = `${err.message} (${err.code})`;
  switch (true) {
    case err.status === 0: return err.message;
    case err.status === 401: return `The API key was not accepted: ${detail}. Check the key, or ask an administrator for a new one.`;
    case err.status === 403: return `This API key is not allowed to do that: ${detail}. Ask for a key with the "check" scope.`;
    case err.status === 404: return `Not found: ${detail}.`;
    case err.status === 413: return `Too large: ${detail}. Send a shorter text or smaller images.`;
    case err.status === 415: return `Unsupported file: ${detail}. Headshots must be JPEG, PNG or WebP.`;
    case err.status === 429: return `The service is busy: ${detail}. Try again in a few seconds.`;
    case err.status === 504: return `The check took too long: ${detail}. Try again.`;
    case err.status >= 500: return `The service had a problem: ${detail}. Try again later.`;
    default: return `The service refused the request: ${detail}.`;
  }
}

export function showError(node, err) {
  node.textContent = err ? describeError(err) : "";
  node.hidden = !err;
}

export const VERDICT_LABELS = {
  likely_ai: "Likely AI-made",
  uncertain: "Uncertain",
  likely_human: "Likely human",
  abstain: "Not enough evidence",
};

export function verdictBadge(verdict) {
  return el("span", { class: `verdict verdict-${verdict}` }, VERDICT_LABELS[verdict] || verdict);
}

export function percent(p) {
  if (p === null || p === undefined) return "n/a";
  return `${(p * 100).toFixed(p < 0.01 || p > 0.99 ? 1 : 0)}%`;
}

/** A number with `digits` significant digits, without exponent noise for ordinary values. */
export function sig(value, digits = 3) {
  if (value === null || value === undefined) return "n/a";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e-3 && abs < 1e6) return String(Number(value.toPrecision(digits)));
  const [mantissa, exponent] = value.toExponential(digits - 1).split("e");
  const superscript = String(Number(exponent)).replace(/[-0-9]/g, (c) => "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"["-0123456789".indexOf(c)]);
  return `${mantissa}×10${superscript}`;
}

export function bylineHref(name) {
  return `/bylines/${encodeURIComponent(name)}`;
}

export function bylineLink(name) {
  return name ? el("a", { href: bylineHref(name) }, name) : el("span", { class: "muted" }, "no byline");
}

export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}
