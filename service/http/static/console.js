// Groundwork web console: a client of the public /v1 API, nothing more.
// The API key lives in sessionStorage (this tab only) and travels only in the Authorization
// header; every value from the server is inserted as text (textContent), never as HTML.
"use strict";

const KEY_SLOT = "groundwork.key";
const $ = (id) => document.getElementById(id);
const state = { me: null, view: "ask", admin: "documents", answer: null, jobsTimer: null, passageTicket: 0 };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_SLOT);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                       credentials: "omit", cache: "no-store" });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

function showError(target, error) {
  $(target).textContent = error ? (error.code ? error.code + ": " : "") + error.message : "";
}

function fmtTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// --- signing in -------------------------------------------------------------------------------
async function boot() {
  try {
    state.me = await api("GET", "/v1/me");
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem(KEY_SLOT);
      $("login").hidden = false; $("app").hidden = true; $("tabs").hidden = true; $("signout").hidden = true;
      $("who").textContent = "";
      if (error.code !== "missing_api_key") showError("login-error", error);
      return;
    }
    $("login").hidden = false;
    showError("login-error", error);
    return;
  }
  const me = state.me;
  $("login").hidden = true; $("app").hidden = false; $("tabs").hidden = false;
  $("signout").hidden = me.auth === "off";
  $("who").textContent = me.auth === "off" ? "dev mode (no key)" : `${me.name || me.prefix} · ${me.role}` +
    (me.groups.includes("*") ? " · all documents" : me.groups.length ? ` · groups ${me.groups.join(", ")}` : " · public documents");
  $("admin-tab").hidden = me.role !== "admin";
  if (me.role !== "admin" && state.view === "admin") setView("ask");
  loadCollections();
}

async function loadCollections() {
  try {
    const models = await api("GET", "/v1/models");
    const select = $("f-collection");
    select.replaceChildren(el("option", { value: "" }, "all"));
    for (const model of models.data) if (model.id !== "groundwork") select.append(el("option", { value: model.id }, model.id));
  } catch (error) { /* the filter stays at "all" */ }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_SLOT, $("key-input").value.trim());
  $("key-input").value = "";
  showError("login-error", null);
  boot();
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_SLOT);
  state.me = null;
  $("answer").hidden = true; $("passage").hidden = true; $("results").replaceChildren(); $("timings").hidden = true;
  boot();
});

// --- views --------------------------------------------------------------------------------------
function setView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  $("view-ask").hidden = view !== "ask";
  $("view-search").hidden = view !== "search";
  $("view-admin").hidden = view !== "admin";
  $("query-panel").hidden = view === "admin";
  $("timings").hidden = view === "admin" || !$("timings").childElementCount;
  $("go").textContent = view === "search" ? "Search" : "Ask";
  $("q").placeholder = view === "search" ? "Search passages…" : "Ask a question about your documents…";
  if (view === "admin") loadAdmin(state.admin);
  else stopJobsPolling();
}

for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => setView(tab.dataset.view));

function currentFilters() {
  const filters = {};
  if ($("f-collection").value) filters.collections = [$("f-collection").value];
  if ($("f-type").value) filters.mime_types = [$("f-type").value];
  if ($("f-after").value) filters.updated_after = $("f-after").value + "T00:00:00Z";
  if ($("f-before").value) filters.updated_before = $("f-before").value + "T23:59:59Z";
  return Object.keys(filters).length ? filters : undefined;
}

function renderTimings(timings) {
  const box = $("timings");
  box.replaceChildren();
  const entries = Object.entries(timings || {});
  for (const [stage, ms] of entries) box.append(el("span", {}, stage + " ", el("b", {}, ms.toFixed(ms < 10 ? 1 : 0)), " ms"));
  box.hidden = !entries.length;
}

$("query-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("q").value.trim();
  if (!query) return;
  showError("query-error", null);
  $("go").disabled = true;
  try {
    if (state.view === "search") await runSearch(query);
    else await runAnswer(query);
  } catch (error) {
    showError("query-error", error);
  } finally {
    $("go").disabled = false;
  }
});

// --- answers and citations -----------------------------------------------------------------------
async function runAnswer(query) {
  const body = await api("POST", "/v1/answer", { query, filters: currentFilters() });
  state.answer = body;
  renderAnswer(body);
  renderTimings(body.timings_ms);
  if (body.citations.length) openCitation(body.citations[0].marker, 0);
}

function renderAnswer(body) {
  // A marker number names a chunk; each occurrence of [n] cites the next of that chunk's
  // citations in order (the API lists them in the order the answer's sentences cite them).
  const box = $("answer");
  const text = el("div", { class: "text" });
  const pattern = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
  const seen = new Map();
  let last = 0;
  for (const match of body.answer.matchAll(pattern)) {
    text.append(body.answer.slice(last, match.index));
    for (const number of match[1].split(",").map((n) => parseInt(n, 10))) {
      const nth = seen.get(number) || 0;
      const cited = body.citations.filter((c) => c.marker === number);
      if (cited.length) {
        seen.set(number, nth + 1);
        const index = Math.min(nth, cited.length - 1);
        text.append(el("button", { type: "button", class: "cite", "data-marker": number, "data-index": index,
                                   title: "Open the cited passage", onclick: () => openCitation(number, index) }, String(number)));
      } else {
        text.append(`[${number}]`);
      }
    }
    last = match.index + match[0].length;
  }
  text.append(body.answer.slice(last));
  const sources = el("ol", { class: "sources" });
  const listed = new Set();
  for (const c of body.citations) {
    if (listed.has(c.marker)) continue;
    listed.add(c.marker);
    sources.append(el("li", { value: c.marker }, el("button", { type: "button", class: "link", onclick: () => openCitation(c.marker, 0) },
                                                     c.title || c.source), c.page ? ` · page ${c.page}` : ""));
  }
  box.replaceChildren(
    el("div", {}, el("strong", {}, "Answer"), body.grounded ? el("span", { class: "badge good" }, "grounded")
                                                             : el("span", { class: "badge bad" }, "not in the documents")),
    text, ...(body.citations.length ? [sources] : []));
  box.classList.toggle("ungrounded", !body.grounded);
  box.hidden = false;
  $("passage").hidden = true;
}

async function openCitation(marker, index) {
  const cited = state.answer ? state.answer.citations.filter((c) => c.marker === marker) : [];
  const citation = cited[index || 0];
  if (!citation) return;
  for (const button of document.querySelectorAll(".cite")) {
    button.classList.toggle("open", Number(button.dataset.marker) === marker && Number(button.dataset.index) === (index || 0));
  }
  const panel = $("passage");
  const ticket = ++state.passageTicket;  // a slower, earlier request must not overwrite a later click
  try {
    const chunk = await api("GET", `/v1/chunks/${citation.chunk_id}`);
    if (ticket === state.passageTicket) renderPassage(citation, cited, chunk);
  } catch (error) {
    if (ticket !== state.passageTicket) return;
    panel.replaceChildren(el("p", { class: "error" }, `${error.code}: ${error.message}`));
    panel.hidden = false;
  }
}

function renderPassage(citation, cited, chunk) {
  // Every span this chunk is cited for is marked; the one whose marker was clicked is #quote.
  const panel = $("passage");
  const text = chunk.text;
  const spans = [citation];
  for (const other of cited) {
    if (spans.every((s) => other.end <= s.start || other.start >= s.end)) spans.push(other);
  }
  spans.sort((a, b) => a.start - b.start);
  const body = el("div", { class: "chunk" });
  let at = 0;
  for (const span of spans) {
    body.append(text.slice(at, span.start));
    const current = span === citation;
    body.append(el("mark", { id: current ? "quote" : null, class: current ? "current" : null, "data-chunk": chunk.chunk_id,
                             "data-marker": citation.marker }, text.slice(span.start, span.end)));
    at = span.end;
  }
  body.append(text.slice(at));
  const pages = chunk.pages.length ? (chunk.pages.length > 1 ? `pages ${chunk.pages[0]}–${chunk.pages[chunk.pages.length - 1]}`
                                                            : `page ${chunk.pages[0]}`) : null;
  const isLink = /^https?:\/\//i.test(chunk.source);
  const source = isLink ? el("a", { href: chunk.source, rel: "noopener noreferrer", target: "_blank" }, chunk.source)
                        : el("span", { class: "source" }, chunk.source);
  panel.replaceChildren(
    el("h3", {}, `[${citation.marker}] `, chunk.title || chunk.source),
    el("div", { class: "meta" }, [pages, chunk.section, chunk.collection].filter(Boolean).join(" · "), el("br"), source),
    body);
  panel.hidden = false;
  $("quote").scrollIntoView({ block: "nearest" });
}

// --- search ----------------------------------------------------------------------------------------
async function runSearch(query) {
  const body = await api("POST", "/v1/search", { query, k: 10, filters: currentFilters() });
  const list = $("results");
  list.replaceChildren(...body.results.map((r) => el("li", { "data-document": r.document_id },
    el("div", { class: "head" }, el("span", { class: "title" }, r.title || r.source), el("span", { class: "score" }, r.score.toFixed(3))),
    el("div", { class: "where" }, [r.source, r.page ? `page ${r.page}` : null, r.section, r.collection].filter(Boolean).join(" · ")),
    el("div", { class: "snippet" }, r.text))));
  if (!body.results.length) list.append(el("li", {}, "No passages matched."));
  renderTimings(body.timings_ms);
}

// --- admin -------------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".subtab")) tab.addEventListener("click", () => loadAdmin(tab.dataset.admin));

async function loadAdmin(pane) {
  state.admin = pane;
  for (const tab of document.querySelectorAll(".subtab")) tab.classList.toggle("active", tab.dataset.admin === pane);
  for (const name of ["documents", "jobs", "indexes", "keys", "audit"]) $("admin-" + name).hidden = name !== pane;
  if (pane !== "jobs") stopJobsPolling();
  showError("admin-error", null);
  try {
    await { documents: loadDocuments, jobs: loadJobs, indexes: loadIndexes, keys: loadKeys, audit: loadAudit }[pane]();
  } catch (error) {
    showError("admin-error", error);
  }
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

async function loadDocuments() {
  const body = await api("GET", "/v1/documents?limit=200");
  $("admin-documents").replaceChildren(table(["Id", "Document", "Collection", "Status", "Groups", "Chunks", "Updated", ""],
    body.documents.map((d) => el("tr", { "data-document": d.id },
      el("td", { class: "num" }, d.id),
      el("td", {}, el("div", {}, d.title || d.source), el("div", { class: "hint" }, d.source)),
      el("td", {}, d.collection),
      el("td", {}, d.status === "indexed" ? el("span", { class: "badge good" }, "indexed") : el("span", { class: "badge bad" }, d.status),
         d.failure_reason ? el("div", { class: "why" }, d.failure_reason + (d.failure_detail ? ": " + d.failure_detail : "")) : null),
      el("td", {}, d.groups.length ? d.groups.join(", ") : "public"),
      el("td", { class: "num" }, d.chunk_count),
      el("td", { class: "time" }, fmtTime(d.updated_at)),
      el("td", { class: "actions" },
         d.source.startsWith("upload://") ? null  // an upload has no server-side file to read again
           : el("button", { type: "button", class: "secondary", onclick: () => reingest(d) }, "Re-ingest"),
         el("button", { type: "button", class: "danger", onclick: () => removeDocument(d) }, "Delete"))))));
}

async function reingest(doc) {
  try {
    await api("POST", "/v1/ingest-jobs", { paths: [doc.source], collection: doc.collection, groups: doc.groups });
    loadAdmin("jobs");
  } catch (error) { showError("admin-error", error); }
}

async function removeDocument(doc) {
  if (!confirm(`Delete document ${doc.id} (${doc.title || doc.source})?`)) return;
  try { await api("DELETE", `/v1/documents/${doc.id}`); await loadDocuments(); } catch (error) { showError("admin-error", error); }
}

function stopJobsPolling() {
  if (state.jobsTimer) clearTimeout(state.jobsTimer);
  state.jobsTimer = null;
}

async function loadJobs() {
  stopJobsPolling();
  const body = await api("GET", "/v1/ingest-jobs?limit=50");
  $("admin-jobs").replaceChildren(body.jobs.length ? table(["Job", "Status", "Progress", "Counts", "Created", "Finished"],
    body.jobs.map((j) => {
      // A job's counts grow as its files finish; the total is not known until it is done.
      const files = j.counts.files || 0;
      const live = j.status === "queued" || j.status === "running";
      return el("tr", { "data-job": j.job_id },
        el("td", {}, el("code", {}, j.job_id.slice(0, 12))),
        el("td", {}, el("span", { class: "badge" + (j.status === "failed" ? " bad" : j.status === "done" ? " good" : "") }, j.status),
           j.error ? el("div", { class: "why" }, j.error) : null),
        el("td", {}, el("div", { class: "progress" + (live ? " live" : "") }, bar(live ? 35 : 100)),
           el("div", { class: "hint" }, `${files} file${files === 1 ? "" : "s"}` + (live ? " so far" : ""))),
        el("td", {}, Object.entries(j.counts).filter(([k, v]) => k !== "files" && v).map(([k, v]) => `${k} ${v}`).join(" · ")),
        el("td", { class: "time" }, fmtTime(j.created_at)), el("td", { class: "time" }, fmtTime(j.finished_at)));
    })) : el("p", { class: "hint" }, "No ingest jobs yet."));
  if (body.jobs.some((j) => j.status === "queued" || j.status === "running")) {
    state.jobsTimer = setTimeout(() => { if (state.view === "admin" && state.admin === "jobs") loadJobs().catch(() => {}); }, 1500);
  }
}

function bar(share) {
  const fill = el("span");
  fill.style.width = share + "%";  // CSSOM, which the page's CSP allows (no inline style attributes)
  return fill;
}

async function loadIndexes() {
  const [indexes, health] = await Promise.all([api("GET", "/v1/indexes"), api("GET", "/v1/health")]);
  const lag = indexes.database_position - indexes.position;
  const kv = (pairs) => el("dl", { class: "kv" }, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("admin-indexes").replaceChildren(el("div", { class: "card" }, kv([
    ["Status", el("span", { class: "badge" + (indexes.status === "ok" ? " good" : " bad") }, indexes.status)],
    ["Live version", `v${indexes.live_version} (on disk: ${indexes.versions.map((v) => "v" + v).join(", ")})`],
    ["Change-log position", `${indexes.position} of ${indexes.database_position}` + (lag > 0 ? ` (${lag} behind)` : " (up to date)")],
    ["Vector index", indexes.vector_index], ["Keyword index", indexes.keyword_index],
    ["Last reindex", indexes.reindex.running ? "running" : (indexes.reindex.finished_at ? fmtTime(indexes.reindex.finished_at) +
      (indexes.reindex.error ? " — " + indexes.reindex.error : "") : "never")],
    ["Database", health.database], ["Embedder", JSON.stringify(health.embedder)], ["Reranker", health.reranker],
    ["Generator", health.generator], ["Problems", [...indexes.problems, ...health.problems].join("; ") || "none"],
  ])));
}

async function loadKeys() {
  const keys = await api("GET", "/v1/keys");
  $("key-list").replaceChildren(table(["Prefix", "Name", "Role", "Groups", "Created", "Last used", ""],
    keys.map((k) => el("tr", {},
      el("td", {}, el("code", {}, k.prefix)), el("td", {}, k.name), el("td", {}, k.role),
      el("td", {}, k.groups.length ? k.groups.join(", ") : "public"), el("td", { class: "time" }, fmtTime(k.created_at)),
      el("td", { class: "time" }, fmtTime(k.last_used_at)),
      el("td", { class: "actions" }, k.revoked_at ? el("span", { class: "badge bad" }, "revoked")
        : el("button", { type: "button", class: "danger", onclick: () => revokeKey(k) }, "Revoke"))))));
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const groups = $("key-groups").value.split(",").map((g) => g.trim()).filter(Boolean);
  try {
    const created = await api("POST", "/v1/keys", { name: $("key-name").value.trim(), role: $("key-role").value, groups });
    const box = $("key-created");
    box.replaceChildren("New key (shown once, copy it now): ", el("strong", {}, created.key));
    box.hidden = false;
    $("key-name").value = ""; $("key-groups").value = "";
    await loadKeys();
  } catch (error) { showError("admin-error", error); }
});

async function revokeKey(key) {
  if (!confirm(`Revoke key ${key.prefix} (${key.name})?`)) return;
  try { await api("DELETE", `/v1/keys/${key.prefix}`); await loadKeys(); } catch (error) { showError("admin-error", error); }
}

async function loadAudit() {
  const body = await api("GET", "/v1/audit?limit=100");
  $("admin-audit").replaceChildren(el("p", { class: "hint" }, `Newest first; audit mode: ${body.mode}.`),
    table(["Time", "Key", "Action", "Status", "Query", "Documents"], body.events.map((e) => el("tr", {},
      el("td", { class: "time" }, fmtTime(e.occurred_at)), el("td", {}, `${e.key_name || e.key_prefix}`), el("td", {}, e.action),
      el("td", { class: "num" }, e.status), el("td", {}, e.query ?? (e.query_sha256 ? "#" + e.query_sha256.slice(0, 12) : "")),
      el("td", {}, e.document_ids.join(", "))))));
}

boot();
