// The page's logic: find the WebGPU adapter, load a checkpoint from picked or dropped files (or,
// with ?checkpoint=FOLDER_URL&documents=FILE_URL, from the server that serves this page), then
// predict and show each document's text with its entity mentions marked and the predicted
// triples with their scores. document.body.dataset.state says where it is ("ready", "loading",
// "predicting", "done", "error", "no-webgpu"); window.docreResult holds the last result,
// window.docreSeconds its prediction time, window.docreError the last error, and
// window.docreRun() predicts again, for tests that drive the page. ?selftest runs the kernel
// checks (window.docreSelftest holds their rows).
import init, { adapter, Predictor, selftest } from "./pkg/docre_web.js";

const $ = (id) => document.getElementById(id);
let predictor = null;
let checkpointFiles = new Map(); // file name -> File or Blob

function state(s, message) {
  document.body.dataset.state = s;
  if (message !== undefined) $("progress").textContent = message;
}

function fail(message) {
  window.docreError = message;
  $("error").textContent = message;
  $("error").hidden = false;
  state("error", "");
}

function clearError() {
  window.docreError = null;
  $("error").hidden = true;
}

async function start() {
  if (!navigator.gpu) {
    $("adapter").textContent = "This browser has no WebGPU (navigator.gpu is missing). Chrome and Edge 113 or later have it; Chromium on Linux needs --enable-unsafe-webgpu (and, without a GPU, --enable-unsafe-swiftshader --use-webgpu-adapter=swiftshader).";
    state("no-webgpu");
    return;
  }
  await init();
  try {
    const a = JSON.parse(await adapter());
    $("adapter").textContent = `Adapter: ${a.name || "unnamed (the browser keeps its name)"} (${a.backend}); subgroups ${a.subgroups ? `of ${a.subgroup_size} lanes` : "not offered"}; largest storage binding ${(a.max_storage_buffer_binding_size / 2 ** 20).toFixed(0)} MiB; kernel parameters in a ${a.params === "uniform" ? "uniform buffer" : a.params}.`;
  } catch (e) {
    $("adapter").textContent = `No usable WebGPU device: ${e.message ?? e}`;
    state("no-webgpu");
    return;
  }
  state("ready", "");
  const params = new URLSearchParams(location.search);
  if (params.has("checkpoint")) {
    const base = params.get("checkpoint").replace(/\/?$/, "/");
    for (const name of ["checkpoint.json", "model.safetensors", "tokenizer.json"]) {
      const r = await fetch(base + name);
      if (r.ok) checkpointFiles.set(name, await r.blob());
    }
    showCheckpoint();
  }
  if (params.has("documents")) {
    const r = await fetch(params.get("documents"));
    $("docs").value = await r.text();
    $("docs").dataset.origin = params.get("documents").split("/").pop();
  }
  if (params.has("checkpoint") && params.has("documents")) await run();
  if (params.has("selftest")) await check();
}

// docre selftest on this adapter: each kernel family against its f64 reference.
async function check() {
  clearError();
  $("results").replaceChildren();
  const table = document.createElement("table");
  table.innerHTML = "<tr><th>family</th><th>variant</th><th>outcome</th><th>seconds</th></tr>";
  $("results").append(table);
  state("checking", "Checking every kernel against its f64 reference…");
  try {
    const rows = JSON.parse(await selftest((json) => {
      const r = JSON.parse(json);
      const row = table.insertRow();
      for (const text of [r.family, r.variant, r.outcome + (r.message ? `: ${r.message}` : ""), r.seconds.toFixed(1)]) row.insertCell().textContent = text;
    }));
    window.docreSelftest = rows;
    const failed = rows.filter((r) => r.outcome === "fail").length;
    state("done", `${rows.length - failed} of ${rows.length} checks passed or were skipped; ${failed} failed`);
  } catch (e) {
    fail(e.message ?? String(e));
  }
}

function showCheckpoint() {
  const missing = ["checkpoint.json", "model.safetensors"].filter((n) => !checkpointFiles.has(n));
  $("ckpt-status").textContent = missing.length ? `missing ${missing.join(", ")}` : `${[...checkpointFiles.keys()].join(", ")}`;
  predictor = null;
  $("run").disabled = missing.length > 0;
}

function takeFiles(files) {
  checkpointFiles = new Map();
  for (const f of files) checkpointFiles.set(f.name, f);
  showCheckpoint();
}

// A dropped folder arrives as a directory entry: read its files (one level).
async function droppedFiles(items) {
  const files = [];
  for (const item of items) {
    const entry = item.webkitGetAsEntry?.();
    if (entry?.isDirectory) {
      const entries = await new Promise((ok, err) => entry.createReader().readEntries(ok, err));
      for (const e of entries.filter((e) => e.isFile)) files.push(await new Promise((ok, err) => e.file(ok, err)));
    } else if (item.kind === "file") {
      files.push(item.getAsFile());
    }
  }
  return files;
}

async function load() {
  state("loading", "Loading the checkpoint onto the GPU…");
  const side = await checkpointFiles.get("checkpoint.json").text();
  const weights = new Uint8Array(await checkpointFiles.get("model.safetensors").arrayBuffer());
  const tok = checkpointFiles.has("tokenizer.json") ? new Uint8Array(await checkpointFiles.get("tokenizer.json").arrayBuffer()) : undefined;
  predictor = await Predictor.open(side, weights, tok);
}

async function run() {
  clearError();
  $("results").replaceChildren();
  try {
    if (!predictor) await load();
    const text = $("docs").value;
    const origin = $("docs").dataset.origin || "pasted documents";
    state("predicting", "Predicting…");
    const t0 = performance.now();
    const result = JSON.parse(await predictor.predict(text, origin));
    const seconds = (performance.now() - t0) / 1000;
    window.docreResult = result;
    render(result);
    state("done", `${result.facts.length} facts over ${result.documents.length} documents in ${seconds.toFixed(1)} s`);
    window.docreSeconds = seconds;
  } catch (e) {
    fail(e.message ?? String(e));
  }
}

const colors = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"];

function render(result) {
  for (const doc of result.documents) {
    const section = document.createElement("div");
    section.className = "doc";
    const h = document.createElement("h3");
    h.textContent = doc.title;
    section.append(h);
    // Mark each mention's words with its entity's index.
    const marks = doc.sents.map((s) => s.map(() => null));
    doc.entities.forEach((e, i) => e.mentions.forEach((m) => {
      for (let w = m.start; w < m.end; w++) marks[m.sent][w] = { i, first: w === m.start, last: w === m.end - 1 };
    }));
    const p = document.createElement("p");
    p.className = "text";
    doc.sents.forEach((sent, si) => sent.forEach((word, wi) => {
      const mark = marks[si][wi];
      if (!mark) {
        p.append(word + " ");
        return;
      }
      const span = document.createElement("span");
      span.className = "mention";
      span.style.background = colors[mark.i % colors.length];
      span.title = `${doc.entities[mark.i].name} (${doc.entities[mark.i].type}, entity ${mark.i})`;
      span.textContent = word;
      if (mark.last) {
        const sub = document.createElement("sub");
        sub.textContent = mark.i;
        span.append(sub);
      }
      p.append(span, " ");
    }));
    section.append(p);
    const facts = result.facts.filter((f) => f.title === doc.title);
    const table = document.createElement("table");
    table.innerHTML = "<tr><th>head</th><th>relation</th><th>tail</th><th>score</th></tr>";
    for (const f of facts) {
      const row = table.insertRow();
      for (const text of [`${doc.entities[f.h_idx].name} (${f.h_idx})`, `${f.relation} (${f.r})`, `${doc.entities[f.t_idx].name} (${f.t_idx})`]) row.insertCell().textContent = text;
      const s = row.insertCell();
      s.className = "score";
      s.textContent = f.score.toFixed(3);
    }
    section.append(facts.length ? table : Object.assign(document.createElement("p"), { textContent: "No relations predicted." }));
    $("results").append(section);
  }
}

$("ckpt-files").addEventListener("change", (e) => takeFiles(e.target.files));
$("docs-file").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (!f) return;
  $("docs").value = await f.text();
  $("docs").dataset.origin = f.name;
});
$("docs").addEventListener("input", () => delete $("docs").dataset.origin);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  takeFiles(await droppedFiles([...e.dataTransfer.items]));
});
$("run").addEventListener("click", run);
$("check").addEventListener("click", check);
window.docreRun = run;
// A panic in the module stops it without settling the awaited promise: say so instead of waiting.
window.addEventListener("error", (e) => fail(`docre stopped: ${e.message}`));
start().catch((e) => fail(e.message ?? String(e)));
