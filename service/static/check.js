// The check page: key, form (text, byline, bio, headshots), result, recent checks.

import { api, bylineLink, clear, el, percent, setupKeyForm, showError, verdictBadge, when } from "./common.js";
import { renderReport } from "./report.js";

const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];
const chosen = []; // {file, url} for the thumbnails in the form
let resultUrls = []; // object URLs shown in the current result

const $ = (id) => document.getElementById(id);

function kib(bytes) {
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function renderChosen() {
  const list = $("headshot-list");
  clear(list);
  chosen.forEach((item, i) => {
    const remove = el("button", { type: "button", class: "secondary small", "aria-label": `Remove ${item.file.name}` }, "Remove");
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(chosen[i].url);
      chosen.splice(i, 1);
      renderChosen();
      $("headshots").focus();
    });
    list.append(el("li", {}, el("img", { src: item.url, alt: "", class: "thumb" }),
      el("span", {}, `${item.file.name} (${kib(item.file.size)})`), remove));
  });
}

function addFiles(files) {
  const rejected = [];
  for (const file of files) {
    if (IMAGE_TYPES.includes(file.type)) chosen.push({ file, url: URL.createObjectURL(file) });
    else rejected.push(file.name);
  }
  renderChosen();
  const error = $("form-error");
  error.hidden = !rejected.length;
  error.textContent = rejected.length ? `Not an image we accept (JPEG, PNG, WebP): ${rejected.join(", ")}` : "";
}

function setupDropZone() {
  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer ? event.dataTransfer.files : []);
  });
  $("headshots").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = "";
  });
}

function setupTextFile() {
  $("text-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const text = (await file.text()).replace(/^\uFEFF/, "");
    $("text").value = text;
    const error = $("form-error");
    error.hidden = !text.includes("\uFFFD");
    error.textContent = error.hidden ? "" : `${file.name} is not valid UTF-8: some characters were replaced with �. Save it as UTF-8 and load it again.`;
  });
}

/** The form as multipart: the text goes as a file so its characters (and offsets) arrive unchanged. */
function formData(text) {
  const data = new FormData();
  if (text.trim()) data.append("text", new Blob([text], { type: "text/plain;charset=utf-8" }), "article.txt");
  for (const name of ["byline", "bio"]) {
    const value = $(name).value.trim();
    if (value) data.append(name, value);
  }
  for (const item of chosen) data.append("headshots", item.file, item.file.name);
  return data;
}

function showResult(report, text, files) {
  resultUrls.forEach((url) => URL.revokeObjectURL(url));
  resultUrls = files.map((file) => URL.createObjectURL(file));
  const body = $("results-body");
  clear(body);
  body.append(renderReport(report, { text, urls: resultUrls }));
}

async function submitCheck(event) {
  event.preventDefault();
  const text = $("text").value;
  const error = $("form-error");
  if (!text.trim() && !chosen.length) {
    error.textContent = "Add article text, at least one headshot, or both.";
    error.hidden = false;
    $("text").focus();
    return;
  }
  const button = $("submit-check");
  const results = $("results");
  button.disabled = true;
  button.textContent = "Checking…";
  results.setAttribute("aria-busy", "true");
  showError(error, null);
  try {
    const files = chosen.map((item) => item.file);
    const report = await api("/v1/checks", { method: "POST", body: formData(text) });
    showResult(report, text, files);
    results.focus();
    loadRecent();
  } catch (err) {
    showError(error, err);
  } finally {
    button.disabled = false;
    button.textContent = "Check";
    results.setAttribute("aria-busy", "false");
  }
}

function recentRow(report) {
  const view = el("button", { type: "button", class: "secondary small", "aria-label": `Show check ${report.id}` }, "Show");
  view.addEventListener("click", () => {
    showResult(report, null, []);
    $("results").focus();
  });
  const text = report.text;
  return el("tr", {},
    el("td", {}, el("time", { datetime: report.created_at }, when(report.created_at))),
    el("td", {}, bylineLink(report.byline)),
    el("td", {}, verdictBadge(report.verdict)),
    el("td", {}, text ? percent(text.ai_probability) : "–"),
    el("td", {}, String((report.headshots || []).length)),
    el("td", {}, view));
}

function recentTable() {
  return el("div", { class: "table-scroll" }, el("table", { class: "recent" },
    el("caption", { class: "visually-hidden" }, "Recent checks, newest first"),
    el("thead", {}, el("tr", {}, ["When", "Byline", "Verdict", "Text AI probability", "Headshots", "Report"].map(
      (h) => el("th", { scope: "col" }, h)))),
    el("tbody", {})));
}

/** The newest checks; `cursor` (from the previous page) appends older ones. */
async function loadRecent(cursor = null) {
  const body = $("recent-body");
  const error = $("recent-error");
  try {
    const page = await api(`/v1/checks?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    showError(error, null);
    if (!cursor) {
      clear(body);
      if (!page.items.length) {
        body.append(el("p", { class: "muted" }, "No checks yet."));
        return;
      }
      body.append(recentTable());
    }
    body.querySelector("tbody").append(...page.items.map(recentRow));
    body.querySelector(".more")?.remove();
    if (page.next_cursor) {
      const more = el("button", { type: "button", class: "secondary more" }, "Older checks");
      more.addEventListener("click", () => loadRecent(page.next_cursor));
      body.append(more);
    }
  } catch (err) {
    showError(error, err);
  }
}

/** A report named in the address (`/?check=chk_…`, linked from author pages). */
async function loadLinkedCheck() {
  const id = new URLSearchParams(window.location.search).get("check");
  if (!id) return;
  try {
    showResult(await api(`/v1/checks/${encodeURIComponent(id)}`), null, []);
  } catch (err) {
    clear($("results-body"));
    const error = el("p", { class: "error", role: "alert" });
    showError(error, err);
    $("results-body").append(error);
  }
}

function onKey(key) {
  if (key) {
    loadRecent();
    loadLinkedCheck();
    return;
  }
  clear($("recent-body"));
  $("recent-body").append(el("p", { class: "muted" }, "Enter an API key to list recent checks."));
}

function setupForm() {
  const form = $("check-form");
  form.addEventListener("submit", submitCheck);
  form.addEventListener("reset", () => {
    chosen.forEach((item) => URL.revokeObjectURL(item.url));
    chosen.length = 0;
    renderChosen();
    showError($("form-error"), null);
  });
  $("refresh-recent").addEventListener("click", () => loadRecent());
}

setupDropZone();
setupTextFile();
setupForm();
setupKeyForm(onKey);
