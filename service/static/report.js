// Render one check report as DOM nodes. User text only ever reaches the page as text nodes.

import { VERDICT_LABELS, bylineLink, el, percent, sig, verdictBadge, when } from "./common.js";

const BANDS = [
  { min: 0.8, name: "high", label: "80–100%: very likely AI" },
  { min: 0.5, name: "mid", label: "50–80%: possibly AI" },
  { min: 0.2, name: "low", label: "20–50%: unlikely AI" },
  { min: 0, name: "none", label: "0–20%: reads as human" },
];

function band(p) {
  return BANDS.find((b) => p >= b.min) || BANDS[BANDS.length - 1];
}

function words(code) {
  return code.replaceAll("_", " ");
}

/** An editor's sentence for a reason code such as `headshot_0_reused_under_other_byline`. */
export function reasonText(code) {
  const abstain = code.match(/^(text|headshot_(\d+))_abstain:(.+)$/);
  if (abstain) {
    const what = abstain[2] === undefined ? "The text" : `Headshot ${Number(abstain[2]) + 1}`;
    return `${what} was not judged: ${words(abstain[3])}.`;
  }
  const text = code.match(/^text_(likely_ai|uncertain|likely_human)$/);
  if (text) return `Text: ${VERDICT_LABELS[text[1]]}.`;
  const head = code.match(/^headshot_(\d+)_(.+)$/);
  if (!head) return words(code);
  const n = Number(head[1]) + 1;
  const rest = head[2];
  if (VERDICT_LABELS[rest]) return `Headshot ${n}: ${VERDICT_LABELS[rest]}.`;
  if (rest === "reused_under_other_byline") return `Headshot ${n} was used before under another byline.`;
  if (rest === "provenance_declares_ai") return `Headshot ${n}'s provenance metadata declares it AI-generated.`;
  return `Headshot ${n}: ${words(rest)}.`;
}

function summary(report) {
  return el("div", { class: "summary" },
    el("p", { class: "verdict-line" }, "Verdict: ", verdictBadge(report.verdict)),
    el("p", { class: "meta" },
      "Byline: ", bylineLink(report.byline), " · ",
      el("time", { datetime: report.created_at }, when(report.created_at)), " · check ",
      el("code", {}, report.id)),
    el("h3", {}, "Why"),
    el("ul", { class: "reasons" }, report.reasons.map((code) =>
      el("li", {}, reasonText(code), " ", el("code", { class: "code" }, code)))));
}

function legend() {
  return el("div", { class: "legend", role: "group", "aria-label": "Highlight legend" },
    el("span", { class: "legend-title" }, "Sentence AI probability:"),
    BANDS.slice().reverse().map((b) => el("span", { class: "legend-item" },
      el("span", { class: `swatch sent-${b.name}`, "aria-hidden": "true" }), b.label)));
}

/** The text with each scored sentence wrapped in a <mark>; offsets are Unicode code points, as Python counts. */
export function highlightedText(text, sentences) {
  const chars = Array.from(text);
  const out = el("div", { class: "article-text" });
  let pos = 0;
  for (const s of [...sentences].sort((a, b) => a.start - b.start)) {
    const start = Math.max(s.start, pos);
    const end = Math.min(s.end, chars.length);
    if (end <= start) continue;
    if (start > pos) out.append(chars.slice(pos, start).join(""));
    const b = band(s.ai_probability);
    const label = `AI probability ${percent(s.ai_probability)}`;
    const mark = el("mark", { class: `sent sent-${b.name}`, title: label, "data-probability": s.ai_probability },
      chars.slice(start, end).join(""), el("span", { class: "visually-hidden" }, ` (${label})`));
    mark.style.backgroundColor = `rgba(214, 40, 40, ${(0.08 + 0.6 * s.ai_probability).toFixed(3)})`;
    out.append(mark);
    pos = end;
  }
  if (pos < chars.length) out.append(chars.slice(pos).join(""));
  return out;
}

function textSection(textReport, text) {
  const section = el("section", { class: "part", "aria-label": "Text" }, el("h3", {}, "Text"));
  if (!textReport) {
    section.append(el("p", { class: "muted" }, "No text was submitted."));
    return section;
  }
  section.append(el("p", {}, verdictBadge(textReport.verdict), " ",
    textReport.ai_probability === null ? `Not judged: ${words(textReport.abstain_reason || "no reason given")}.`
      : `AI probability ${percent(textReport.ai_probability)}` +
        (textReport.threshold !== null ? ` (flagged from ${percent(textReport.threshold)})` : "") + ".",
    textReport.model ? el("span", { class: "muted" }, ` Model ${textReport.model}.`) : null));
  if (text) {
    section.append(legend(), highlightedText(text, textReport.sentences || []));
  } else if ((textReport.sentences || []).length) {
    section.append(el("p", { class: "muted" }, "The service does not keep article text; sentence scores: ",
      textReport.sentences.map((s) => `[${s.start}–${s.end}) ${percent(s.ai_probability)}`).join(", ")));
  }
  return section;
}

function faceFrame(h, url) {
  const frame = el("div", { class: "headshot-frame" });
  if (url) {
    frame.append(el("img", { src: url, alt: `Headshot ${h.index + 1} as uploaded`, class: "headshot-img" }));
  } else {
    const placeholder = el("div", { class: "headshot-placeholder" }, "image not kept");
    if (h.width && h.height) placeholder.style.aspectRatio = `${h.width} / ${h.height}`;
    frame.append(placeholder);
  }
  if (h.face_box && h.width && h.height) {
    const [x, y, w, bh] = h.face_box;
    const box = el("div", { class: "face-box", role: "img",
      "aria-label": `Face found at x ${x}, y ${y}, ${w} by ${bh} pixels` });
    Object.assign(box.style, { left: `${(100 * x) / h.width}%`, top: `${(100 * y) / h.height}%`,
      width: `${(100 * w) / h.width}%`, height: `${(100 * bh) / h.height}%` });
    frame.append(box);
  }
  return frame;
}

function provenanceList(findings) {
  if (!findings.length) return el("p", { class: "muted" }, "No provenance metadata found.");
  return el("table", { class: "findings" },
    el("caption", {}, "Provenance findings"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Kind"), el("th", { scope: "col" }, "Value"),
      el("th", { scope: "col" }, "Strength"))),
    el("tbody", {}, findings.map((f) => el("tr", {},
      el("td", {}, words(f.kind)), el("td", {}, f.value),
      el("td", {}, el("span", { class: `strength strength-${f.strength}`, title: f.basis }, words(f.strength)))))));
}

function reuseWarnings(matches) {
  if (!matches.length) return null;
  return el("div", { class: "reuse", role: "note" },
    el("p", { class: "reuse-title" }, "⚠ This headshot was used before under another byline:"),
    el("ul", {}, matches.map((m) => el("li", {},
      "Headshot ", String(m.headshot_index + 1), " of check ", el("code", {}, m.check_id), " by ",
      bylineLink(m.byline), ` (similarity ${percent(m.similarity)}, ${words(m.method)})`))));
}

/**
 * Under a judged face that was not flagged: the face model only knows the generators it was trained on. Measured
 * for the shipped model (its card's cross-generator section): trained on one of its two generators, it scored the
 * other's faces as real about as often as the real photos.
 */
function unseenGeneratorNote(h) {
  if (h.synthetic_probability === null || !["likely_human", "uncertain"].includes(h.verdict)) return null;
  return el("p", { class: "muted face-caveat" },
    "Not flagged is not proof the photo is real: the face model recognises the image generators it was trained on ",
    "(its model card lists them), and faces from other generators mostly pass as real.");
}

function headshotCard(h, url) {
  return el("figure", { class: "headshot" },
    el("div", { class: "headshot-image" }, faceFrame(h, url)),
    el("figcaption", {},
      el("p", {}, el("strong", {}, `Headshot ${h.index + 1}: `), verdictBadge(h.verdict), " ",
        h.synthetic_probability === null ? `Not judged: ${words(h.abstain_reason || "no reason given")}.`
          : `Synthetic probability ${percent(h.synthetic_probability)}.`),
      unseenGeneratorNote(h),
      h.face_box ? null : el("p", { class: "muted" }, "No face box."),
      provenanceList(h.provenance || []),
      reuseWarnings(h.reuse || [])));
}

function headshotsSection(headshots, urls) {
  const section = el("section", { class: "part", "aria-label": "Headshots" }, el("h3", {}, "Headshots"));
  if (!headshots.length) section.append(el("p", { class: "muted" }, "No headshots were submitted."));
  else section.append(el("div", { class: "headshots" }, headshots.map((h) => headshotCard(h, urls[h.index]))));
  return section;
}

/** "0.412 J · 0.0000458 gCO2e · 0.0052% of a smartphone charge · estimated (cpu-time-estimate, cpu)". */
export function energyText(e) {
  if (e.joules === null) return `No inference ran, so no energy was used (method ${e.method}).`;
  const share = e.smartphone_charges === null ? "n/a" : `${sig(e.smartphone_charges * 100)}%`;
  return `${sig(e.joules)} J · ${sig(e.gco2e)} gCO2e (grid ${sig(e.grid_gco2e_per_kwh)} gCO2e/kWh, ${e.grid_source}) · ` +
    `${share} of a smartphone charge · ${e.method} (${e.source}${e.device ? `, ${e.device}` : ""})` +
    (e.below_resolution ? " · below the meter's resolution" : "");
}

function energySection(energy) {
  return el("section", { class: "part energy", "aria-label": "Energy" },
    el("h3", {}, "Energy of this check"), el("p", { class: "energy-line" }, energyText(energy)));
}

/** The whole report. `context.text` is the submitted text (if known); `context.urls[i]` shows headshot i. */
export function renderReport(report, context = {}) {
  return el("article", { class: `report report-${report.verdict}`, "data-check-id": report.id },
    summary(report),
    textSection(report.text, context.text || null),
    headshotsSection(report.headshots || [], context.urls || []),
    energySection(report.energy));
}
