// Annotation review page: the queue, one task's report text with its spans and
// recommendations, an editor, keyboard shortcuts, and drafts that survive a reload (autosaved to
// the server, and kept in localStorage until the server has them). Plain DOM only; text is
// always set as text, never as HTML.
"use strict";

(() => {
  const { bindShortcuts, byId, clone, fillQueue, pieces, plural, replaceParam, request, say,
          showError, signIn, statusLine, toggleHelp, twoDecimals } = window.radnlp;
  const API = "/api/v1/annotations";
  const CONCEPTS = "/annotate/api/concepts";
  const AUTOSAVE_MS = 800;
  const SEARCH_MS = 200;
  const QUEUE_LIMIT = 200;
  const LABELS = ["FINDING", "ANATOMY", "MEASUREMENT"];
  const LABEL_KEYS = { f: "FINDING", a: "ANATOMY", m: "MEASUREMENT" };
  const ASSERTION_KEYS = { 1: "present", 2: "absent", 3: "possible" };
  const BOUNDARY_KEYS = { "[": ["start", -1], "]": ["start", 1], "{": ["end", -1],
                          "}": ["end", 1] };
  const CONCEPT_KIND = { FINDING: "finding", ANATOMY: "anatomy" };
  const MODALITIES = ["CT", "MR", "US", "XR", "NM", "PT", "MG", "RF"];
  const REGIONS = ["chest", "abdomen", "pelvis", "abdomen/pelvis", "head", "neck", "spine",
                   "breast", "extremity", "thyroid", "kidney", "liver"];
  // Trimmed off a mouse selection: a sloppy drag often takes a space or the full stop.
  const TRIM = /[\s.,;:!?()"']/;

  const params = new URLSearchParams(window.location.search);
  const annotator = params.get("annotator");

  let queue = [];
  let task = null;
  let doc = null;
  let selected = null; // { kind: "span" | "rec", item }
  let undoStack = [];
  let dirty = false;
  let changeSeq = 0;
  let saveTimer = null;
  let saveChain = Promise.resolve();
  let loadSeq = 0;
  let searchSeq = 0;
  let searchTimer = null;

  // --- Server ----------------------------------------------------------------------------

  const enc = encodeURIComponent;
  const taskUrl = (id) => `${API}/tasks/${id}?annotator=${enc(annotator)}`;
  const saveUrl = (id) => `${API}/tasks/${id}/annotations/${enc(annotator)}`;

  // --- Local copy: kept from each change until the server has that change -----------------

  const localKey = (id) => `radnlp.annotate.v1.${annotator}.${id}`;

  function readLocal(id) {
    try {
      const entry = JSON.parse(window.localStorage.getItem(localKey(id)) || "null");
      return entry && entry.document && typeof entry.changedAt === "number" ? entry : null;
    } catch (_) {
      return null;
    }
  }

  function writeLocal(id, entry) {
    try {
      window.localStorage.setItem(localKey(id), JSON.stringify(entry));
    } catch (_) { /* storage full or disabled: the server autosave still runs */ }
  }

  const dropLocal = (id) => window.localStorage.removeItem(localKey(id));

  // --- Document helpers ------------------------------------------------------------------

  const isPending = (item) => item.status === "pending";
  const spanOrder = (a, b) => a.start - b.start || a.end - b.end
    || LABELS.indexOf(a.label) - LABELS.indexOf(b.label);

  // The stored form leaves out defaults (source "annotator", status "accepted"); the page
  // keeps them explicit.
  function normalise(document) {
    const out = clone(document);
    out.spans = (out.spans || []).map((s) => ({ ...s, source: s.source || "annotator",
                                                status: s.status || "accepted" }));
    out.recommendations = (out.recommendations || []).map((r) => ({
      ...r, source: r.source || "annotator", status: r.status || "accepted" }));
    out.spans.sort(spanOrder);
    out.recommendations.sort((a, b) => a.start - b.start || a.end - b.end);
    return out;
  }

  function pendingCounts() {
    return { spans: doc.spans.filter(isPending).length,
             recs: doc.recommendations.filter(isPending).length };
  }

  // --- Status line -----------------------------------------------------------------------

  const setStatus = statusLine({
    idle: "", unsaved: "Unsaved changes (kept in this browser)", saving: "Saving…",
    saved: "Saved", submitted: "Submitted", error: "Not saved",
  });

  // --- Changes, undo, autosave -----------------------------------------------------------

  function selectedIndex() {
    if (!selected) return null;
    const list = selected.kind === "span" ? doc.spans : doc.recommendations;
    return { kind: selected.kind, index: list.indexOf(selected.item) };
  }

  // Every edit goes through here: undo snapshot, the edit, local copy, autosave timer.
  function change(edit, { renderRecs = true } = {}) {
    const before = { doc: JSON.stringify(doc), selected: selectedIndex() };
    if (edit() === false) return;
    undoStack.push(before);
    if (undoStack.length > 200) undoStack.shift();
    doc.spans.sort(spanOrder);
    doc.recommendations.sort((a, b) => a.start - b.start || a.end - b.end);
    markDirty();
    render({ renderRecs });
  }

  function undo() {
    const last = undoStack.pop();
    if (!last) {
      say("Nothing to undo.");
      return;
    }
    doc = JSON.parse(last.doc);
    const s = last.selected;
    const list = s && (s.kind === "span" ? doc.spans : doc.recommendations);
    selected = s && s.index >= 0 && list[s.index] ? { kind: s.kind, item: list[s.index] } : null;
    markDirty();
    render();
    say("Undone.");
  }

  const saveState = () => (task && task.state === "submitted" ? "submitted" : "draft");

  function markDirty() {
    dirty = true;
    changeSeq += 1;
    writeLocal(task.id, { document: doc, changedAt: Date.now(), base: task.updated_at || null });
    setStatus("unsaved");
    window.clearTimeout(saveTimer);
    saveTimer = window.setTimeout(() => save(saveState()).catch(() => {}), AUTOSAVE_MS);
  }

  // Saves run one after another, so an older body never lands after a newer one.
  function save(state) {
    window.clearTimeout(saveTimer);
    saveTimer = null;
    const current = task;
    const seq = changeSeq;
    const body = JSON.stringify({ document: doc, state });
    const run = async () => {
      if (current === task) setStatus("saving");
      let result;
      try {
        result = await request(saveUrl(current.id), { method: "PUT", body });
      } catch (error) {
        if (current === task) setStatus("error", error.message);
        throw error;
      }
      current.updated_at = result.updated_at;
      current.state = result.state;
      if (current === task && seq === changeSeq) {
        dirty = false;
        dropLocal(current.id);
        setStatus(result.state === "submitted" ? "submitted" : "saved");
        renderTaskHead();
      }
      return result;
    };
    saveChain = saveChain.then(run, run);
    return saveChain;
  }

  async function flush() {
    if (task && dirty) {
      try {
        await save(saveState());
      } catch (_) { /* the local copy keeps the work */ }
    }
  }

  // --- Rendering -------------------------------------------------------------------------

  function render({ renderRecs = true } = {}) {
    renderText();
    renderEditor();
    if (renderRecs) renderRecommendations();
    else refreshRecStates();
    renderCounts();
  }

  // After an edit typed into a recommendation's fields: keep the focus, update the status only.
  function refreshRecStates() {
    for (const li of byId("recommendations").children) {
      const rec = doc.recommendations[Number(li.dataset.rec)];
      if (!rec) continue;
      li.classList.toggle("status-pending", isPending(rec));
      li.classList.toggle("status-accepted", !isPending(rec));
      li.querySelector(".status-text").textContent =
        `${rec.source === "model" ? "model" : "added by you"} · ${rec.status}`;
      li.querySelector(".rec-accept").disabled = !isPending(rec);
    }
  }

  function describeSpan(span) {
    const parts = [span.label.toLowerCase()];
    if (span.assertion) parts.push(span.assertion);
    if (span.concept) parts.push(`concept: ${span.concept}`);
    if (span.laterality) parts.push(span.laterality);
    parts.push(span.source === "model" ? "model" : "added by you");
    parts.push(span.status);
    return parts.join(" · ");
  }

  // The text is cut at every span and recommendation boundary; each piece knows its offset
  // (data-start) and shows the innermost span covering it.
  function renderText() {
    const text = doc.text;
    const pre = byId("report-text");
    const fragment = document.createDocumentFragment();
    for (const [a, b] of pieces(text.length, [...doc.spans, ...doc.recommendations])) {
      const covering = doc.spans.filter((s) => s.start <= a && s.end >= b);
      const rec = doc.recommendations.findIndex((r) => r.start <= a && r.end >= b);
      const el = document.createElement(covering.length ? "mark" : "span");
      el.dataset.start = String(a);
      el.textContent = text.slice(a, b);
      if (rec >= 0) {
        el.classList.add("in-rec");
        el.dataset.rec = String(rec);
        if (isPending(doc.recommendations[rec])) el.classList.add("rec-pending");
      }
      if (covering.length) {
        const span = covering.reduce((x, y) => (y.end - y.start < x.end - x.start ? y : x));
        el.dataset.span = String(doc.spans.indexOf(span));
        el.dataset.spanStart = String(span.start);
        el.dataset.spanEnd = String(span.end);
        el.dataset.label = span.label;
        el.classList.add(`label-${span.label}`, `status-${span.status}`);
        if (span.assertion) el.classList.add(`assertion-${span.assertion}`);
        if (span.start === a) el.classList.add("span-first");
        if (span.end === b) el.classList.add("span-last");
        if (covering.length > 1) el.classList.add("overlap");
        el.title = `${span.text}: ${describeSpan(span)}`;
      }
      fragment.append(el);
    }
    pre.replaceChildren(fragment);
    markSelection();
  }

  function markSelection() {
    const pre = byId("report-text");
    for (const el of pre.querySelectorAll(".selected")) el.classList.remove("selected");
    if (!selected) return;
    const { start, end } = selected.item;
    let first = null;
    for (const el of pre.children) {
      const a = Number(el.dataset.start);
      if (a >= start && a < end) {
        if (selected.kind === "span" && el.tagName !== "MARK") continue;
        el.classList.add("selected");
        first = first || el;
      }
    }
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  function renderCounts() {
    const { spans, recs } = pendingCounts();
    const el = byId("pending-count");
    el.textContent = spans || recs
      ? `Still pending: ${plural(spans, "span")}, ${plural(recs, "recommendation")}.`
      : "Nothing pending.";
    byId("task").dataset.pending = String(spans + recs);
    byId("submit-note").classList.toggle("warn", spans + recs > 0);
    byId("submit-note").textContent = spans + recs > 0
      ? `Submitting accepts nothing for you: the ${plural(spans + recs, "item")} still ` +
        "pending will be submitted as pending (Shift+Enter accepts them)."
      : "Submitting accepts nothing for you: everything has been reviewed.";
  }

  function renderTaskHead() {
    byId("task-title").textContent = `Report ${task.external_id}`;
    byId("task-model-version").textContent = task.model_version || "–";
    byId("task-uncertainty").textContent = twoDecimals(task.uncertainty);
    byId("task-state").textContent = task.state === "submitted" ? "submitted (changes update it)"
      : task.state === "draft" ? "draft" : "not started";
  }

  function renderEditor() {
    const editor = byId("span-editor");
    if (!selected || selected.kind !== "span") {
      editor.hidden = true;
      return;
    }
    const span = selected.item;
    editor.hidden = false;
    editor.dataset.spanStart = String(span.start);
    editor.dataset.spanEnd = String(span.end);
    byId("span-text").textContent = `“${span.text}”`;
    byId("span-source").textContent = span.source === "model" ? "from the model" : "added by you";
    byId("span-status").textContent = span.status;
    byId("span-status").className = `status-text status-${span.status}`;
    byId("span-offsets").textContent = `${span.start}–${span.end}`;
    byId("span-label").value = span.label;
    const isFinding = span.label === "FINDING";
    byId("assertion-field").hidden = !isFinding;
    for (const radio of document.querySelectorAll('input[name="assertion"]')) {
      radio.checked = radio.value === span.assertion;
    }
    byId("span-concept").textContent = span.concept || "none";
    byId("concept-input").closest(".concept-field").hidden = !CONCEPT_KIND[span.label];
    byId("span-laterality").value = span.laterality || "";
    byId("span-accept").disabled = !isPending(span);
  }

  function renderQueue() {
    fillQueue(queue, task ? task.id : null, (item, i) => {
      const mine = (item.annotators || {})[annotator];
      return [`${i + 1}. ${item.external_id}`,
              `uncertainty ${twoDecimals(item.uncertainty)} · `
              + `${item.model_version}${mine ? ` · ${mine}` : ""}`];
    }, openTask);
  }

  function option(value, label, current) {
    const el = document.createElement("option");
    el.value = value;
    el.textContent = label;
    el.selected = value === (current || "");
    return el;
  }

  function field(labelText, input) {
    const label = document.createElement("label");
    label.className = "rec-field";
    label.append(document.createTextNode(labelText), input);
    return label;
  }

  function renderRecommendations() {
    const list = byId("recommendations");
    byId("recs-empty").hidden = doc.recommendations.length > 0;
    list.replaceChildren(...doc.recommendations.map((rec, index) => {
      const li = document.createElement("li");
      li.className = `rec status-${rec.status}`;
      li.dataset.rec = String(index);
      if (selected && selected.item === rec) li.classList.add("selected");
      const quote = document.createElement("q");
      quote.textContent = rec.text;
      const state = document.createElement("span");
      state.className = `status-text status-${rec.status}`;
      state.textContent = `${rec.source === "model" ? "model" : "added by you"} · ${rec.status}`;

      const edit = (apply) => change(() => {
        apply();
        rec.status = "accepted";
      }, { renderRecs: false });
      const modality = document.createElement("select");
      modality.className = "rec-modality";
      modality.append(option("", "none", rec.modality),
                      ...MODALITIES.map((m) => option(m, m, rec.modality)));
      if (rec.modality && !MODALITIES.includes(rec.modality)) {
        modality.append(option(rec.modality, rec.modality, rec.modality));
      }
      modality.addEventListener("change", () => edit(() => {
        rec.modality = modality.value || null;
      }));
      const region = document.createElement("input");
      region.className = "rec-region";
      region.value = rec.body_region || "";
      region.setAttribute("list", "region-options");
      region.addEventListener("change", () => edit(() => {
        rec.body_region = region.value.trim() || null;
      }));
      const interval = (name) => {
        const input = document.createElement("input");
        input.type = "number";
        input.min = "0";
        input.step = "1";
        input.className = `rec-${name}`;
        input.value = rec[name] === null || rec[name] === undefined ? "" : String(rec[name]);
        input.addEventListener("change", () => edit(() => {
          rec[name] = input.value === "" ? null : Math.max(0, Math.round(Number(input.value)));
        }));
        return input;
      };
      const conditional = document.createElement("input");
      conditional.type = "checkbox";
      conditional.className = "rec-conditional";
      conditional.checked = Boolean(rec.conditional);
      conditional.addEventListener("change", () => edit(() => {
        rec.conditional = conditional.checked;
      }));
      const accept = document.createElement("button");
      accept.type = "button";
      accept.className = "rec-accept primary";
      accept.textContent = "Accept";
      accept.disabled = !isPending(rec);
      accept.addEventListener("click", () => change(() => { rec.status = "accepted"; }));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "rec-delete danger";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => change(() => {
        doc.recommendations.splice(doc.recommendations.indexOf(rec), 1);
        if (selected && selected.item === rec) selected = null;
      }));
      const fields = document.createElement("div");
      fields.className = "rec-fields";
      fields.append(field("Modality", modality), field("Body region", region),
                    field("Interval from (days)", interval("interval_min_days")),
                    field("to (days)", interval("interval_max_days")),
                    field("Conditional", conditional));
      const actions = document.createElement("div");
      actions.className = "actions";
      actions.append(accept, remove);
      li.append(quote, state, fields, actions);
      li.addEventListener("focusin", () => selectItem("rec", rec, { focusText: false }));
      return li;
    }));
    if (!byId("region-options")) {
      const datalist = document.createElement("datalist");
      datalist.id = "region-options";
      datalist.append(...REGIONS.map((r) => option(r, r)));
      document.body.append(datalist);
    }
  }

  // --- Selection and edits ---------------------------------------------------------------

  function selectItem(kind, item, { focusText = true } = {}) {
    if (selected && selected.item === item) return;
    selected = item ? { kind, item } : null;
    markSelection();
    renderEditor();
    for (const li of byId("recommendations").children) {
      li.classList.toggle("selected", kind === "rec"
        && doc.recommendations[Number(li.dataset.rec)] === item);
    }
    if (kind === "span") {
      byId("concept-input").value = "";
      byId("concept-results").replaceChildren();
    }
    if (focusText && document.activeElement !== byId("report-text")) {
      byId("report-text").focus({ preventScroll: true });
    }
  }

  function selectedSpan() {
    return selected && selected.kind === "span" ? selected.item : null;
  }

  function stepSpan(by) {
    if (!doc.spans.length) return;
    const current = selectedSpan();
    let index = current ? doc.spans.indexOf(current) + by : (by > 0 ? 0 : doc.spans.length - 1);
    index = (index + doc.spans.length) % doc.spans.length;
    selectItem("span", doc.spans[index]);
  }

  function duplicate(span, start, end, label) {
    return doc.spans.some((s) => s !== span && s.start === start && s.end === end
      && s.label === label);
  }

  function editSpan(apply) {
    const span = selectedSpan();
    if (!span) {
      say("Select a span first (click it, or Tab).");
      return;
    }
    change(() => {
      if (apply(span) === false) return false;
      span.status = "accepted";
      return true;
    });
  }

  function setAssertion(value) {
    const span = selectedSpan();
    if (span && span.label !== "FINDING") {
      say("Only findings have an assertion.");
      return;
    }
    editSpan((s) => { s.assertion = value; });
  }

  function setLabel(label) {
    editSpan((s) => {
      if (duplicate(s, s.start, s.end, label)) {
        say(`There is already a ${label.toLowerCase()} span here.`);
        return false;
      }
      s.label = label;
      if (label === "FINDING") s.assertion = s.assertion || "present";
      else s.assertion = null;
      if (label === "MEASUREMENT") s.concept = null;
      return true;
    });
  }

  function moveBoundary(which, by) {
    editSpan((s) => {
      const start = which === "start" ? s.start + by : s.start;
      const end = which === "end" ? s.end + by : s.end;
      if (start < 0 || end > doc.text.length || end <= start) return false;
      if (duplicate(s, start, end, s.label)) {
        say("A span with these boundaries already exists.");
        return false;
      }
      s.start = start;
      s.end = end;
      s.text = doc.text.slice(start, end);
      return true;
    });
  }

  function acceptSelected() {
    if (!selected) {
      say("Select a span first (click it, or Tab).");
      return;
    }
    const { item } = selected;
    if (!isPending(item)) return;
    change(() => { item.status = "accepted"; });
  }

  function acceptAll() {
    const { spans, recs } = pendingCounts();
    if (!spans && !recs) {
      say("Nothing is pending.");
      return;
    }
    change(() => {
      for (const item of [...doc.spans, ...doc.recommendations]) item.status = "accepted";
    });
    say(`Accepted ${plural(spans, "span")} and ${plural(recs, "recommendation")}.`);
  }

  function deleteSelected() {
    if (!selected) {
      say("Select a span first (click it, or Tab).");
      return;
    }
    const { kind, item } = selected;
    const list = kind === "span" ? doc.spans : doc.recommendations;
    const index = list.indexOf(item);
    change(() => {
      list.splice(index, 1);
      selected = list.length && kind === "span"
        ? { kind, item: list[Math.min(index, list.length - 1)] } : null;
    });
    say(`Deleted “${item.text}” (Ctrl+Z undoes).`);
  }

  // A DOM point (node, offset) inside the report text as a character offset.
  function pointOffset(node, offset) {
    const pre = byId("report-text");
    if (node.nodeType === Node.TEXT_NODE) {
      return Number(node.parentElement.dataset.start) + offset;
    }
    if (node === pre) {
      const child = pre.children[offset];
      return child ? Number(child.dataset.start) : doc.text.length;
    }
    const start = Number(node.dataset.start);
    return offset === 0 ? start : start + node.textContent.length;
  }

  function selectedRange() {
    const selection = window.getSelection();
    if (!selection || !selection.rangeCount || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    const pre = byId("report-text");
    if (!pre.contains(range.startContainer) || !pre.contains(range.endContainer)) return null;
    let start = pointOffset(range.startContainer, range.startOffset);
    let end = pointOffset(range.endContainer, range.endOffset);
    while (start < end && TRIM.test(doc.text[start])) start += 1;
    while (end > start && TRIM.test(doc.text[end - 1])) end -= 1;
    return start < end ? { start, end } : null;
  }

  function addSpan(label) {
    const range = selectedRange();
    if (!range) {
      say("Select some of the report text with the mouse first.");
      return;
    }
    const { start, end } = range;
    const existing = doc.spans.find((s) => s.start === start && s.end === end
      && s.label === label);
    window.getSelection().removeAllRanges();
    if (existing) {
      selectItem("span", existing);
      say("That span is already there.");
      return;
    }
    const span = { start, end, label, text: doc.text.slice(start, end),
                   assertion: label === "FINDING" ? "present" : null, concept: null,
                   laterality: null, source: "annotator", status: "accepted" };
    change(() => {
      doc.spans.push(span);
      selected = { kind: "span", item: span };
    });
    byId("report-text").focus({ preventScroll: true });
    say(`Added ${label.toLowerCase()} “${span.text}”.`);
  }

  function addRecommendation() {
    const range = selectedRange();
    if (!range) {
      say("Select the recommendation sentence first.");
      return;
    }
    const { start, end } = range;
    window.getSelection().removeAllRanges();
    if (doc.recommendations.some((r) => r.start === start && r.end === end)) {
      say("That recommendation is already there.");
      return;
    }
    const rec = { start, end, text: doc.text.slice(start, end), modality: null,
                  body_region: null, interval_min_days: null, interval_max_days: null,
                  conditional: false, source: "annotator", status: "accepted" };
    change(() => {
      doc.recommendations.push(rec);
      selected = { kind: "rec", item: rec };
    });
    say("Added a recommendation: fill in its modality, region and interval below.");
  }

  // --- Concept search --------------------------------------------------------------------

  function searchConcepts() {
    window.clearTimeout(searchTimer);
    const span = selectedSpan();
    const q = byId("concept-input").value.trim();
    const results = byId("concept-results");
    if (!span || !q) {
      results.replaceChildren();
      return;
    }
    searchTimer = window.setTimeout(async () => {
      const seq = ++searchSeq;
      const kind = CONCEPT_KIND[span.label];
      let data;
      try {
        data = await request(`${CONCEPTS}?q=${enc(q)}${kind ? `&kind=${kind}` : ""}`);
      } catch (error) {
        say(`Terminology search failed: ${error.message}`);
        return;
      }
      if (seq !== searchSeq) return;
      results.replaceChildren(...data.items.map((concept) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "concept";
        button.dataset.name = concept.name;
        const codes = [concept.radlex && `RadLex ${concept.radlex}`,
                       concept.snomed && `SNOMED ${concept.snomed}`].filter(Boolean).join(" · ");
        button.textContent = `${concept.name} (${concept.kind})${codes ? ` — ${codes}` : ""}`;
        button.addEventListener("click", () => {
          editSpan((s) => { s.concept = concept.name; });
          results.replaceChildren();
          byId("concept-input").value = "";
          byId("report-text").focus({ preventScroll: true });
        });
        li.append(button);
        return li;
      }));
      if (!data.items.length) say(`No concept found for “${q}”.`);
    }, SEARCH_MS);
  }

  // --- Tasks and the queue ---------------------------------------------------------------

  async function loadQueue() {
    const data = await request(`${API}/tasks?annotator=${enc(annotator)}&order=uncertainty`
                               + `&limit=${QUEUE_LIMIT}`);
    queue = data.items;
    renderQueue();
  }

  // The newer of the local copy and the server's wins; a local copy the server has not seen
  // (it was made from the server's current version) always wins.
  function pickDocument(data) {
    const local = readLocal(data.id);
    const serverTime = data.updated_at ? Date.parse(data.updated_at) : null;
    if (local && (serverTime === null || local.base === data.updated_at
                  || local.changedAt > serverTime)) {
      return { document: local.document, from: "local" };
    }
    if (local) dropLocal(data.id);
    if (data.annotation) return { document: data.annotation, from: "server" };
    return { document: data.pre_annotation, from: "model" };
  }

  async function openTask(id) {
    await flush();
    const seq = ++loadSeq;
    byId("task-view").setAttribute("aria-busy", "true");
    let data;
    try {
      data = await request(taskUrl(id));
    } catch (error) {
      showError(`Task ${id} could not be loaded: ${error.message}`);
      return;
    }
    if (seq !== loadSeq) return;
    showError("");
    task = data;
    const { document: source, from } = pickDocument(data);
    doc = normalise(source);
    selected = null;
    undoStack = [];
    dirty = false;
    window.clearTimeout(saveTimer);
    replaceParam("task", String(id));
    byId("task").hidden = false;
    byId("task").dataset.taskId = String(id);
    byId("task").dataset.loadedFrom = from;
    byId("workspace").dataset.taskId = String(id);
    renderTaskHead();
    render();
    renderQueue();
    byId("concept-input").value = "";
    byId("concept-results").replaceChildren();
    if (from === "local") {
      // Work from before a reload that the server may not have: save it now.
      dirty = true;
      changeSeq += 1;
      setStatus("unsaved");
      save(saveState()).catch(() => {});
      say("Restored your unsaved work from this browser.");
    } else {
      setStatus(data.state === "submitted" ? "submitted" : data.state ? "saved" : "idle");
      say("");
    }
    byId("task-view").setAttribute("aria-busy", "false");
    byId("workspace").dataset.state = "ready";
    byId("report-text").focus({ preventScroll: true });
  }

  function stepTask(by) {
    if (!queue.length) return;
    const index = task ? queue.findIndex((t) => t.id === task.id) : -1;
    const next = index < 0 ? 0 : index + by;
    if (next < 0 || next >= queue.length) {
      say(by > 0 ? "This is the last task in the queue." : "This is the first task.");
      return;
    }
    openTask(queue[next].id);
  }

  async function submit() {
    if (!task) return;
    const done = task;
    const order = queue.map((t) => t.id);
    const { spans, recs } = pendingCounts();
    try {
      await save("submitted");
    } catch (_) {
      return;
    }
    dropLocal(done.id);
    await loadQueue();
    const after = order.slice(order.indexOf(done.id) + 1);
    const next = after.find((id) => queue.some((t) => t.id === id))
      || (queue.length ? queue[0].id : null);
    const note = spans + recs ? ` (${plural(spans + recs, "item")} left pending)` : "";
    if (next === null) {
      task = null;
      doc = null;
      byId("task").hidden = true;
      byId("workspace").dataset.taskId = "";
      renderQueue();
      say("");
      setStatus("submitted", `report ${done.external_id}${note}; the queue is empty`);
      return;
    }
    await openTask(next);
    setStatus("submitted", `report ${done.external_id}${note}`);
    say(`Submitted report ${done.external_id}${note}. This is the next task.`);
  }

  // --- Keyboard --------------------------------------------------------------------------

  function onKey(event) {
    const target = event.target;
    const editable = target.matches && target.matches("input, select, textarea");
    const control = target.matches && target.matches("button, a[href], summary");
    const { key } = event;
    if (key === "Escape") {
      if (!byId("help").hidden) toggleHelp(false);
      else if (editable || control) byId("report-text").focus();
      else if (document.activeElement === byId("report-text")) {
        byId("report-text").blur();
        selectItem(null, null, { focusText: false });
      }
      return;
    }
    if (key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
      return;
    }
    if (editable) return;
    if (event.ctrlKey || event.metaKey) {
      if (key.toLowerCase() === "z" && doc) {
        event.preventDefault();
        undo();
      }
      return;
    }
    if (event.altKey) return;
    if (key === "?") {
      toggleHelp();
    } else if (key === "n" || key === "p") {
      stepTask(key === "n" ? 1 : -1);
    } else if (!doc) {
      return;
    } else if (key === "Enter") {
      if (control) return;
      if (event.shiftKey) acceptAll();
      else acceptSelected();
    } else if (key === "A") {
      acceptAll();
    } else if (key in ASSERTION_KEYS) {
      setAssertion(ASSERTION_KEYS[key]);
    } else if (key === "Delete" || key === "Backspace") {
      deleteSelected();
    } else if (key === "Tab") {
      if (!byId("report-text").contains(target)) return;
      stepSpan(event.shiftKey ? -1 : 1);
    } else if (key === "s") {
      save(saveState()).then(() => say("Draft saved."), () => {});
    } else if (key in LABEL_KEYS) {
      addSpan(LABEL_KEYS[key]);
    } else if (key === "r") {
      addRecommendation();
    } else if (key in BOUNDARY_KEYS) {
      moveBoundary(...BOUNDARY_KEYS[key]);
    } else {
      return;
    }
    event.preventDefault();
  }

  // --- Start -----------------------------------------------------------------------------

  function bind() {
    bindShortcuts(onKey);
    byId("report-text").addEventListener("click", (event) => {
      if (!window.getSelection().isCollapsed) return; // a drag: keep it for f / a / m
      const el = event.target.closest("[data-start]");
      if (!el) return;
      if (el.dataset.span !== undefined) selectItem("span", doc.spans[Number(el.dataset.span)]);
      else if (el.dataset.rec !== undefined) {
        selectItem("rec", doc.recommendations[Number(el.dataset.rec)]);
        const li = byId("recommendations").querySelector(`[data-rec="${el.dataset.rec}"]`);
        if (li) li.scrollIntoView({ block: "nearest" });
      } else selectItem(null, null);
    });
    byId("span-label").addEventListener("change", (e) => setLabel(e.target.value));
    for (const radio of document.querySelectorAll('input[name="assertion"]')) {
      radio.addEventListener("change", () => setAssertion(radio.value));
    }
    byId("span-laterality").addEventListener("change", (e) => editSpan((s) => {
      s.laterality = e.target.value || null;
    }));
    byId("concept-input").addEventListener("input", searchConcepts);
    byId("concept-input").addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      const first = byId("concept-results").querySelector("button");
      if (first) first.click();
    });
    byId("concept-clear").addEventListener("click", () => editSpan((s) => { s.concept = null; }));
    for (const button of document.querySelectorAll("[data-move]")) {
      button.addEventListener("click", () => moveBoundary(button.dataset.move,
                                                          Number(button.dataset.by)));
    }
    byId("span-accept").addEventListener("click", acceptSelected);
    byId("span-delete").addEventListener("click", deleteSelected);
    byId("accept-all").addEventListener("click", acceptAll);
    byId("save-draft").addEventListener("click", () => save(saveState()).catch(() => {}));
    byId("submit").addEventListener("click", submit);
  }

  async function start() {
    if (!signIn("annotator", annotator, { drop: ["task"] })) return;
    bind();
    try {
      await loadQueue();
    } catch (error) {
      showError(`The queue could not be loaded: ${error.message}`);
      byId("workspace").dataset.state = "error";
      return;
    }
    const wanted = Number(params.get("task"));
    if (wanted) await openTask(wanted);
    else if (queue.length) await openTask(queue[0].id);
    else byId("workspace").dataset.state = "ready";
  }

  start();
})();
