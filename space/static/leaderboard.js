// The leaderboard table in the browser: the body of gr.HTML's js_on_load (`element`, `props`, `watch`
// come from Gradio). The data arrive once as JSON (space/browser.py); every filter, search, sort, page
// and the CSV export run here, with the semantics of space/table.py, without a server round trip.
const root = element.querySelector(".lb");
const $ = (selector) => root.querySelector(selector);
const LABELS = {
  base_models: "Base model", languages: "Language group", datasets: "SFT dataset", methods: "Method",
  data_sizes: "Data size", schedules: "LR schedule", licenses: "License", parameters: "Parameters (B)",
};
const NUMERIC_FILTERS = new Set(["data_sizes", "parameters"]);
let data = null;      // the prepared payload
let state = null;     // the current filters (the fields of space.table.Filters)
let problems = [];    // what a shared link asked for that the leaderboard lacks
let view = null;      // the current selection
let page = 0;
let pageSize = 100;

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => (
  {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
// Thousands separators without Intl (which is slow to call thousands of times).
const fmtInt = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const isMissing = (v) => v === null || v === undefined || Number.isNaN(v);

function floats(list) {
  const out = new Float64Array(list.length);
  for (let i = 0; i < list.length; i++) out[i] = list[i] === null ? NaN : list[i];
  return out;
}

function codes(column) {
  const out = new Int32Array(column.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = column.codes[i] === null ? -1 : column.codes[i];
  return {values: column.values, codes: out};
}

function prepare(payload) {
  const columns = payload.columns;
  const coded = {};
  const numbers = {};
  for (const [name, column] of Object.entries(columns)) {
    if (column && column.codes) coded[name] = codes(column);
    else if (name !== "model_id" && name !== "name") numbers[name] = floats(column);
  }
  const text = (name, i) => {
    if (name === "model_id") return columns.model_id[i] ?? "";
    const c = coded[name];
    return c && c.codes[i] >= 0 ? String(c.values[c.codes[i]]) : "";
  };
  const n = payload.rows;
  const search = new Array(n);
  const lora = coded.method.values.indexOf("lora");
  for (let i = 0; i < n; i++) {
    const parts = payload.vocabulary.search_columns.map((name) => text(name, i));
    // The words people type that are not stored verbatim (space.data.build_search_text).
    search[i] = (parts.join(" | ") + (coded.method.codes[i] === lora ? " | adapter" : "")).toLowerCase();
  }
  const raw = payload.raw.map(floats);
  const base = coded.base_model_name.codes;
  const gain = raw.map((values, j) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const ref = base[i] >= 0 ? payload.gain_reference[base[i]][j] : null;
      out[i] = ref === null ? NaN : values[i] - ref;
    }
    return out;
  });
  return {...payload, coded, numbers, names: columns.name, ids: columns.model_id, search, raw, gain};
}

// ---- the view (space.table.select) ----

function rowMask() {
  const n = data.rows;
  const mask = new Uint8Array(n).fill(1);
  for (const [field, column] of Object.entries(data.vocabulary.choice_filters)) {
    const wanted = state[field];
    if (!wanted || !wanted.length) continue;
    if (data.coded[column]) {
      const c = data.coded[column];
      const allowed = new Set(wanted.map((v) => c.values.indexOf(v)).filter((k) => k >= 0));
      for (let i = 0; i < n; i++) if (mask[i] && !allowed.has(c.codes[i])) mask[i] = 0;
    } else {
      const values = data.numbers[column];
      const allowed = new Set(wanted.map(Number));
      for (let i = 0; i < n; i++) if (mask[i] && !allowed.has(values[i])) mask[i] = 0;
    }
  }
  const epochs = data.numbers.epoch;
  if (state.epoch_min !== null) for (let i = 0; i < n; i++) if (!(epochs[i] >= state.epoch_min)) mask[i] = 0;
  if (state.epoch_max !== null) for (let i = 0; i < n; i++) if (!(epochs[i] <= state.epoch_max)) mask[i] = 0;
  const terms = state.search.toLowerCase().split(/\s+/).filter(Boolean);
  for (const term of terms) for (let i = 0; i < n; i++) if (mask[i] && !data.search[i].includes(term)) mask[i] = 0;
  return mask;
}

function selectedScores() {
  const keep = [];
  data.scores.forEach((c, j) => {
    if ((state.families === null || state.families.includes(c.family)) &&
        (state.shots === null || state.shots.includes(c.shots))) keep.push(j);
  });
  return keep;
}

function averagedOf(scores) {
  if (!scores.length) return [];
  const percent = scores.some((j) => data.scores[j].scale === "%");
  const scale = percent ? "%" : data.scores[scores[0]].scale;
  return scores.filter((j) => data.scores[j].scale === scale);
}

function sortKey(rows, scores, average) {
  const vocab = data.vocabulary;
  let name = state.sort_by;
  let descending = state.descending;
  const scoreIndex = data.scores.findIndex((c) => c.name === name);
  const known = name in vocab.identity || name === vocab.rank || (scoreIndex >= 0 && scores.includes(scoreIndex));
  if (!known) name = vocab.average;
  if (name === vocab.rank) { name = vocab.average; descending = !descending; }
  if (name === vocab.average) return {key: average, numeric: true, descending};
  if (name in vocab.identity) {
    const column = vocab.identity[name];
    if (column === "name" || column === "model_id") {
      const strings = column === "name" ? data.names : data.ids;
      return {key: Array.from(rows, (r) => strings[r]), numeric: false, descending};
    }
    const source = data.coded[column] ? data.coded[column].codes : data.numbers[column];
    const key = new Float64Array(rows.length);
    for (let k = 0; k < rows.length; k++) {
      const v = source[rows[k]];
      key[k] = data.coded[column] && v < 0 ? NaN : v;
    }
    return {key, numeric: true, descending};
  }
  const values = (state.mode === vocab.gain ? data.gain : data.raw)[scoreIndex];
  return {key: Float64Array.from(rows, (r) => values[r]), numeric: true, descending};
}

function orderOf({key, numeric, descending}) {
  // Stable, missing values last in both directions (space.table.sort_order).
  const order = Array.from({length: key.length}, (_, k) => k);
  const missing = numeric ? (k) => Number.isNaN(key[k]) : (k) => key[k] === null || key[k] === undefined;
  const sign = descending ? -1 : 1;
  order.sort((a, b) => {
    const ma = missing(a), mb = missing(b);
    if (ma || mb) return ma === mb ? a - b : (ma ? 1 : -1);
    const x = key[a], y = key[b];
    return x < y ? -sign : x > y ? sign : a - b;
  });
  return order;
}

function select() {
  const mask = rowMask();
  const rows = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) rows.push(i);
  const scores = selectedScores();
  const averaged = averagedOf(scores);
  const source = state.mode === data.vocabulary.gain ? data.gain : data.raw;
  const average = new Float64Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    let total = 0, count = 0;
    for (const j of averaged) {
      const v = source[j][rows[k]];
      if (!Number.isNaN(v)) { total += v; count += 1; }
    }
    average[k] = count ? total / count : NaN;
  }
  const order = orderOf(sortKey(rows, scores, average));
  const present = Float64Array.from(average.filter((v) => !Number.isNaN(v))).sort();
  return {
    rows: order.map((k) => rows[k]), average: order.map((k) => average[k]), scores, averaged, source, present,
  };
}

function rankOf(value) {
  // Rank by average within the view, ties share the best rank (pandas rank(method="min")).
  if (Number.isNaN(value)) return null;
  let low = 0, high = view.present.length;
  while (low < high) { const mid = (low + high) >> 1; if (view.present[mid] <= value) low = mid + 1; else high = mid; }
  return 1 + view.present.length - low;
}

// ---- rendering ----

function averageNote() {
  if (!view.averaged.length) return "";
  const scale = data.scores[view.averaged[0]].scale;
  const unit = scale === "%" ? "percentage" : `${scale}-scale`;
  let text = `average = mean of the ${view.averaged.length} ${unit} benchmark column(s) shown`;
  const left = [...new Set(view.scores.filter((j) => !view.averaged.includes(j)).map((j) => data.scores[j].benchmark))].sort();
  if (left.length) text += ` (${left.join(", ")} on another scale: not averaged)`;
  return text;
}

function message() {
  const total = data.rows;
  if (problems.length) {
    return "<strong>This link asks for something the leaderboard does not have</strong>, so no models are shown: " +
      escapeHtml(problems.join("; ")) + ". Change a filter, or open the page without parameters.";
  }
  if (total === 0) return "<strong>No results are loaded.</strong>";
  const count = view.rows.length;
  if (count === 0) {
    const terms = state.search.toLowerCase().split(/\s+/).filter(Boolean);
    const hint = terms.length ? ` for the search ${terms.map((t) => `'${escapeHtml(t)}'`).join(" + ")}` : "";
    return `<strong>No models match these filters${hint}.</strong> Clear a filter or the search box ` +
      `(the leaderboard has ${fmtInt(total)} models).`;
  }
  let text = `<strong>${fmtInt(count)}</strong> of ${fmtInt(total)} models`;
  if (!view.scores.length) text += " · no benchmark column selected: pick a benchmark family and a shot setting";
  const mode = state.mode === data.vocabulary.gain ? "gain over the base model" : "raw scores";
  return [text, mode, escapeHtml(averageNote())].filter(Boolean).join(" · ");
}

const SHOWN_IDENTITY = ["model", "base model", "params (B)", "license", "language", "dataset", "method",
  "data size", "epoch", "schedule"];

function identityValue(name, row) {
  const column = data.vocabulary.identity[name];
  if (column === "name") return data.names[row];
  if (column === "model_id") return data.ids[row];
  const c = data.coded[column];
  if (c) return c.codes[row] >= 0 ? c.values[c.codes[row]] : null;
  const v = data.numbers[column][row];
  return Number.isNaN(v) ? null : v;
}

function scoreText(v) {
  if (Number.isNaN(v)) return "";
  return state.mode === data.vocabulary.gain && v > 0 ? `+${v.toFixed(2)}` : v.toFixed(2);
}

function headerCell(label, key) {
  const vocab = data.vocabulary;
  const active = state.sort_by === key || (key === vocab.average && !(
    state.sort_by in vocab.identity || state.sort_by === vocab.rank || view.scores.some((j) => data.scores[j].name === state.sort_by)));
  const arrow = active ? (state.descending ? " ▼" : " ▲") : "";
  return `<th class="header-cell" data-sort="${escapeHtml(key)}" title="sort by ${escapeHtml(label)}">${escapeHtml(label)}${arrow}</th>`;
}

// Writes that change nothing are skipped: each one would make the browser restyle and lay out again.
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function setClass(node, name) { if (node.className !== name) node.className = name; }
function setAttr(node, name, value) {
  if (value === null) { if (node.hasAttribute(name)) node.removeAttribute(name); }
  else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

let headerHtml = null;  // the header last written: rebuilt only when the columns or the sort change
let messageHtml = null;
let views = 0;  // views rendered

function renderHeader() {
  const vocab = data.vocabulary;
  const heads = [headerCell("rank", vocab.rank), ...SHOWN_IDENTITY.map((n) => headerCell(n, n)),
    headerCell(vocab.average, vocab.average), ...view.scores.map((j) => headerCell(data.scores[j].name, data.scores[j].name))];
  const html = heads.join("");
  if (html === headerHtml) return heads.length;
  headerHtml = html;
  $("colgroup").innerHTML = heads.map((_, k) => `<col class="${k === 0 ? "c-rank" : k === 1 ? "c-model" : ""}">`).join("");
  $("thead").innerHTML = `<tr>${html}</tr>`;
  return heads.length;
}

function newCells(from, to) {
  const cells = [];
  for (let c = from; c < to; c++) {
    const td = document.createElement("td");
    td.className = c === 1 ? "body-cell model" : "body-cell num";
    if (c === 1) Object.assign(td.appendChild(document.createElement("a")), {target: "_blank", rel: "noopener"});
    cells.push(td);
  }
  return cells;
}

function pageRows(count, width) {
  // A page's rows and cells are kept from one view to the next and only their text changes: every new
  // element is styled, laid out and painted anew, which was most of an update's time (a page of 25 rows
  // x 53 columns is 1,300 cells). A new column set adds or drops cells at the rows' ends only.
  const tbody = $("tbody");
  while (tbody.rows.length > count) tbody.lastElementChild.remove();
  for (const tr of tbody.rows) {
    while (tr.cells.length > width) tr.lastElementChild.remove();
    if (tr.cells.length < width) tr.append(...newCells(tr.cells.length, width));
  }
  const fresh = [];
  for (let k = tbody.rows.length; k < count; k++) {
    const tr = document.createElement("tr");
    tr.className = "body-row";
    tr.append(...newCells(0, width));
    fresh.push(tr);
  }
  if (fresh.length) tbody.append(...fresh);
  return tbody.rows;
}

function fillRow(cells, k) {
  const row = view.rows[k];
  const rank = rankOf(view.average[k]);
  setText(cells[0], rank === null ? "" : String(rank));
  const model = cells[1].firstChild;
  const links = data.coded.link;
  setAttr(model, "href", links.codes[row] >= 0 ? links.values[links.codes[row]] : null);
  setAttr(model, "title", data.ids[row]);
  setText(model, data.names[row]);
  let c = 2;
  for (const n of SHOWN_IDENTITY.slice(1)) {
    const v = identityValue(n, row);
    setClass(cells[c], typeof v === "number" ? "body-cell num" : "body-cell");
    setText(cells[c++], v === null ? "" : typeof v === "number" && n === "data size" ? fmtInt(v) : String(v));
  }
  setText(cells[c++], scoreText(view.average[k]));
  for (const j of view.scores) setText(cells[c++], scoreText(view.source[j][row]));
}

function renderTable() {
  const width = renderHeader();
  const pages = Math.max(1, Math.ceil(view.rows.length / pageSize));
  page = Math.min(Math.max(page, 0), pages - 1);
  const start = page * pageSize;
  const end = Math.min(view.rows.length, start + pageSize);
  const rows = pageRows(end - start, width);
  for (let k = start; k < end; k++) fillRow(rows[k - start].cells, k);
  setText($("#lb-page-info"), view.rows.length
    ? `rows ${fmtInt(start + 1)}–${fmtInt(end)} of ${fmtInt(view.rows.length)} · page ${page + 1} of ${pages}`
    : "no rows");
  setAttr($("#lb-page"), "max", String(pages));
  if ($("#lb-page").value !== String(page + 1)) $("#lb-page").value = String(page + 1);
  const html = message();
  if (html !== messageHtml) $("#view-message").innerHTML = messageHtml = html;
  // Every rendered view is marked, also one that changed no cell (a search that matches the same rows):
  // what waits for the table's update (the browser tests, benchmarks/space.py) sees that it is done.
  $("#leaderboard-table").dataset.view = String(++views);
}

// ---- the address bar (space.urlstate.encode) ----

function sameValues(a, b) {
  if (a === null || b === null || !Array.isArray(a)) return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function encode() {
  const query = new URLSearchParams();
  for (const [field, param] of Object.entries(data.vocabulary.params)) {
    const value = state[field];
    if (sameValues(value, data.defaults[field])) continue;
    query.append(param, Array.isArray(value) ? value.map(String).join(",") : String(value));
  }
  if (state.epoch_min !== null || state.epoch_max !== null) {
    query.append("epochs", `${state.epoch_min ?? ""}-${state.epoch_max ?? ""}`);
  }
  if (!state.descending) query.append("order", "asc");
  return query.toString();
}

let urlTimer = null;

function writeUrl() {
  // Deferred until input pauses: history.replaceState costs tens of ms under Gradio's router, and the
  // address only matters once a view is shared or reloaded.
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const query = encode();
    window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
  }, 250);
}

// ---- controls ----

function update(writeAddress = true) {
  view = problems.length ? {rows: [], average: [], scores: selectedScores(), averaged: [], source: data.raw, present: []} : select();
  if (problems.length) view.averaged = averagedOf(view.scores);
  renderTable();
  syncControls();
  if (writeAddress) writeUrl();
}

function changed(mutate) {
  return (event) => {
    mutate(event);
    problems = [];
    page = 0;
    update();
  };
}

function checkboxes(container, name, values, checked, label = (v) => String(v)) {
  container.querySelectorAll("label").forEach((l) => l.remove());
  for (const v of values) {
    const box = document.createElement("label");
    box.innerHTML = `<input type="checkbox" name="${escapeHtml(name)}"> ${escapeHtml(label(v))}`;
    const input = box.querySelector("input");
    input.value = String(v);
    input.checked = checked(v);
    container.appendChild(box);
  }
}

function choiceSummary(field) {
  const picked = state[field];
  return `${LABELS[field]}: ${picked.length ? picked.map(String).join(", ") : "all"}`;
}

function buildControls() {
  const filters = $("#lb-filters");
  filters.innerHTML = "";
  for (const field of Object.keys(data.vocabulary.choice_filters)) {
    const details = document.createElement("details");
    details.className = "lb-choice";
    details.id = `f-${field}`;
    details.innerHTML = `<summary></summary><div class="lb-options"></div>`;
    const format = field === "data_sizes" ? fmtInt : String;
    checkboxes(details.querySelector(".lb-options"), field, data.choices[field], (v) => state[field].includes(v), format);
    details.addEventListener("change", changed(() => {
      const picked = [...details.querySelectorAll("input:checked")].map((i) => i.value);
      state[field] = NUMERIC_FILTERS.has(field) ? picked.map(Number) : picked;
    }));
    filters.appendChild(details);
  }
  for (const [id, field] of [["#f-family", "families"], ["#f-shots", "shots"]]) {
    checkboxes($(id), field, data.choices[field], (v) => state[field] === null || state[field].includes(v));
  }
  const sortable = [data.vocabulary.average, data.vocabulary.rank, ...Object.keys(data.vocabulary.identity),
    ...data.scores.map((c) => c.name)];
  $("#f-sort").innerHTML = sortable.map((s) => `<option value="${escapeHtml(s)}">${escapeHtml(s)}</option>`).join("");
  const epochs = [...data.numbers.epoch].filter((v) => !Number.isNaN(v));
  for (const id of ["#f-epoch-min", "#f-epoch-max"]) {
    $(id).min = epochs.length ? String(Math.min(...epochs)) : "";
    $(id).max = epochs.length ? String(Math.max(...epochs)) : "";
  }
}

function syncControls() {
  $("#search").value === state.search || ($("#search").value = state.search);
  for (const field of Object.keys(data.vocabulary.choice_filters)) {
    const details = root.querySelector(`#f-${field}`);
    setText(details.querySelector("summary"), choiceSummary(field));
    details.querySelectorAll("input").forEach((i) => {
      i.checked = state[field].map(String).includes(i.value);
    });
  }
  for (const [id, field] of [["#f-family", "families"], ["#f-shots", "shots"]]) {
    $(id).querySelectorAll("input").forEach((i) => { i.checked = state[field] === null || state[field].includes(i.value); });
  }
  $("#f-epoch-min").value = state.epoch_min === null ? "" : String(state.epoch_min);
  $("#f-epoch-max").value = state.epoch_max === null ? "" : String(state.epoch_max);
  root.querySelectorAll("input[name=lb-mode]").forEach((i) => { i.checked = i.value === state.mode; });
  $("#f-sort").value = state.sort_by;
  $("#f-order").value = state.descending ? "desc" : "asc";
  $("#f-page-size").value = String(pageSize);
}

function groupValue(id, field) {
  const picked = [...$(id).querySelectorAll("input:checked")].map((i) => i.value);
  return picked.length === data.choices[field].length ? null : picked;
}

function epochValue(input) {
  const v = input.value.trim();
  return v === "" || Number.isNaN(Number(v)) ? null : Math.trunc(Number(v));
}

function bindControls() {
  $("#search").addEventListener("input", changed((e) => { state.search = e.target.value; }));
  $("#f-epoch-min").addEventListener("input", changed((e) => { state.epoch_min = epochValue(e.target); }));
  $("#f-epoch-max").addEventListener("input", changed((e) => { state.epoch_max = epochValue(e.target); }));
  $("#f-family").addEventListener("change", changed(() => { state.families = groupValue("#f-family", "families"); }));
  $("#f-shots").addEventListener("change", changed(() => { state.shots = groupValue("#f-shots", "shots"); }));
  $("#f-mode").addEventListener("change", changed((e) => { state.mode = e.target.value; }));
  $("#f-sort").addEventListener("change", changed((e) => { state.sort_by = e.target.value; }));
  $("#f-order").addEventListener("change", changed((e) => { state.descending = e.target.value !== "asc"; }));
  $("#f-page-size").addEventListener("change", (e) => { pageSize = Number(e.target.value); page = 0; renderTable(); });
  $("thead").addEventListener("click", changed((e) => {
    const cell = e.target.closest("th");
    if (!cell) return;
    const key = cell.dataset.sort;
    state.descending = state.sort_by === key ? !state.descending : key !== "model";
    state.sort_by = key;
  }));
  $("#lb-pager").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const last = Math.max(0, Math.ceil(view.rows.length / pageSize) - 1);
    page = {first: 0, prev: page - 1, next: page + 1, last}[button.dataset.page];
    renderTable();
  });
  $("#lb-page").addEventListener("change", (e) => { page = Number(e.target.value) - 1; renderTable(); });
  $("#export-csv").addEventListener("click", downloadCsv);
}

// ---- CSV (space.table.to_csv: every matching row, in order, model ids, repo and revision) ----

function csvField(v) {
  if (v === null || v === undefined || (typeof v === "number" && Number.isNaN(v))) return "";
  const s = typeof v === "number" ? String(Math.round(v * 1000) / 1000) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvText() {
  const identity = Object.keys(data.vocabulary.identity);
  const header = ["rank", ...identity, data.vocabulary.average, ...view.scores.map((j) => data.scores[j].name), "repo_id", "revision"];
  const lines = [header.map(csvField).join(",")];
  const repo = data.coded.repo_id, revision = data.coded.revision;
  for (let k = 0; k < view.rows.length; k++) {
    const row = view.rows[k];
    const fields = [rankOf(view.average[k])];
    for (const name of identity) fields.push(identityValue(name, row));
    fields.push(view.average[k]);
    for (const j of view.scores) fields.push(view.source[j][row]);
    fields.push(repo.codes[row] >= 0 ? repo.values[repo.codes[row]] : null);
    fields.push(revision.codes[row] >= 0 ? revision.values[revision.codes[row]] : null);
    lines.push(fields.map(csvField).join(","));
  }
  return lines.join("\n") + "\n";
}

function downloadCsv() {
  const url = URL.createObjectURL(new Blob([csvText()], {type: "text/csv"}));
  const link = document.createElement("a");
  link.href = url;
  link.download = "leaderboard.csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---- data in ----

function validOnly(filters) {
  const out = {...filters};
  for (const field of Object.keys(data.choices)) {
    if (out[field] === null) continue;
    const known = data.choices[field].map(String);
    out[field] = out[field].filter((v) => known.includes(String(v)));
  }
  return out;
}

function receive(text) {
  if (!text) return;
  const payload = JSON.parse(text);
  const first = data === null;
  data = prepare(payload);
  if (first) {
    state = payload.filters;
    problems = payload.problems;
    pageSize = payload.page_size;
    buildControls();
    bindControls();
  } else {
    state = validOnly(state);  // "Reload results" keeps the view
    buildControls();
  }
  update(!problems.length);
  root.dataset.ready = String(Date.now());
}

receive(props.value);
watch("value", () => receive(props.value));
