// The author page: this byline's checks, verdicts and headshot reuse.
// Uses GET /v1/bylines/{name} where the service has it, else builds the same view from GET /v1/checks?byline=.

import { ApiError, api, bylineLink, clear, el, percent, setupKeyForm, showError, verdictBadge, when } from "./common.js";

const $ = (id) => document.getElementById(id);

function bylineName() {
  const raw = window.location.pathname.replace(/^\/bylines\//, "");
  try { return decodeURIComponent(raw); } catch { return raw; }
}

/** The profile shape of GET /v1/bylines/{name}, built from full reports. */
export function profileFromReports(name, reports) {
  const headshots = [];
  const reuse = [];
  for (const r of reports) {
    for (const h of r.headshots || []) {
      headshots.push({ check_id: r.id, index: h.index, verdict: h.verdict, synthetic_probability: h.synthetic_probability });
      for (const m of h.reuse || []) {
        reuse.push({ check_id: r.id, index: h.index, other_check_id: m.check_id, other_byline: m.byline,
          other_index: m.headshot_index, similarity: m.similarity, method: m.method });
      }
    }
  }
  const checks = reports.map((r) => ({ id: r.id, created_at: r.created_at, verdict: r.verdict,
    text_ai_probability: r.text ? r.text.ai_probability : null }));
  return { byline: name, checks, headshots, reuse };
}

async function loadProfile(name) {
  try {
    return await api(`/v1/bylines/${encodeURIComponent(name)}`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const page = await api(`/v1/checks?byline=${encodeURIComponent(name)}&limit=200`);
  return profileFromReports(name, page.items);
}

function table(caption, headers, rows) {
  return el("div", { class: "table-scroll" }, el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)));
}

function checksTable(checks) {
  return table("Checks under this byline, newest first", ["When", "Verdict", "Text AI probability", "Check"],
    checks.map((c) => el("tr", {},
      el("td", {}, el("time", { datetime: c.created_at }, when(c.created_at))),
      el("td", {}, verdictBadge(c.verdict)),
      el("td", {}, percent(c.text_ai_probability)),
      el("td", {}, el("a", { href: `/?check=${encodeURIComponent(c.id)}` }, el("code", {}, c.id))))));
}

function headshotsTable(headshots) {
  return table("Headshots submitted with this byline", ["Check", "Headshot", "Verdict", "Synthetic probability"],
    headshots.map((h) => el("tr", {},
      el("td", {}, el("code", {}, h.check_id)), el("td", {}, String(h.index + 1)),
      el("td", {}, verdictBadge(h.verdict)), el("td", {}, percent(h.synthetic_probability)))));
}

function reuseList(reuse) {
  if (!reuse.length) return el("p", {}, "No headshot of this byline matches one used under another byline.");
  return el("div", { class: "reuse", role: "note" },
    el("p", { class: "reuse-title" }, `⚠ ${reuse.length} headshot match(es) with other bylines:`),
    el("ul", {}, reuse.map((m) => el("li", {},
      "Headshot ", String(m.index + 1), " of check ", el("code", {}, m.check_id), " matches headshot ",
      String(m.other_index + 1), " of check ", el("code", {}, m.other_check_id), " by ", bylineLink(m.other_byline),
      ` (similarity ${percent(m.similarity)}, ${String(m.method).replaceAll("_", " ")})`))));
}

function renderProfile(profile) {
  const body = $("author-body");
  clear(body);
  if (!profile.checks.length) {
    body.append(el("p", {}, "No checks under this byline yet."));
    return;
  }
  const counts = {};
  for (const c of profile.checks) counts[c.verdict] = (counts[c.verdict] || 0) + 1;
  body.append(
    el("p", { class: "meta" }, `${profile.checks.length} check(s): `,
      Object.entries(counts).map(([v, n]) => el("span", { class: "count" }, verdictBadge(v), ` × ${n} `))),
    el("h3", {}, "Headshot reuse"), reuseList(profile.reuse),
    el("h3", {}, "Checks"), checksTable(profile.checks),
    profile.headshots.length ? el("h3", {}, "Headshots") : null,
    profile.headshots.length ? headshotsTable(profile.headshots) : null);
}

async function onKey(key) {
  const body = $("author-body");
  const error = $("author-error");
  if (!key) {
    clear(body);
    body.append(el("p", { class: "muted" }, "Enter an API key to see this author's checks."));
    return;
  }
  $("author").setAttribute("aria-busy", "true");
  try {
    renderProfile(await loadProfile(bylineName()));
    showError(error, null);
  } catch (err) {
    showError(error, err);
  } finally {
    $("author").setAttribute("aria-busy", "false");
  }
}

const name = bylineName();
document.title = `${name} · bylinecheck`;
$("author-heading").textContent = `Author: ${name}`;
setupKeyForm(onKey);
