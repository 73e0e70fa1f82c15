// Adjudication page: the tasks that await adjudication, and for one task every annotator's
// submitted version over the report text (one underline lane each, plus the gold lane), the
// disagreements between them, keyboard resolution, and saving the gold version. Plain DOM
// only; text is always set as text, never as HTML.
"use strict";

(() => {
  const { bindShortcuts, byId, clone, el, fillQueue, pieces, plural, replaceParam, request,
          say, showError, signIn, statusLine, toggleHelp, twoDecimals } = window.radnlp;
  const API = "/api/v1/annotations";
  const QUEUE_LIMIT = 200;
  const LABELS = ["FINDING", "ANATOMY", "MEASUREMENT"];
  // Lane 0 is the gold version; annotator N (1-based, as the number keys) is lane N.
  const GOLD_COLOUR = "#18181b";
  const COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777",
                   "#0891b2", "#65a30d", "#78716c"];
  const LANE_PITCH = 5; // px between lanes
  const BAR = 3; // px, a lane's bar
  const SPAN_FIELDS = ["label", "assertion", "concept", "laterality"];
  const REC_FIELDS = { modality: "modality", body_region: "body region",
                       interval: "interval", conditional: "conditional" };

  const params = new URLSearchParams(window.location.search);
  const adjudicator = params.get("adjudicator");

  let queue = [];
  let task = null; // the task, with its annotators' normalised documents
  let annotators = []; // [{ name, doc }], submitted only, in the API's (name) order
  let units = []; // every offset pair any annotator marked, agreed or not
  let disputes = []; // the units the annotators disagree on
  let current = -1; // index into disputes
  let saving = false;
  let loadSeq = 0;

  // --- Documents and disagreements -------------------------------------------------------

  const labelOrder = (a, b) => LABELS.indexOf(a.label) - LABELS.indexOf(b.label);

  function normalise(document) {
    const out = clone(document);
    out.spans = out.spans || [];
    out.recommendations = out.recommendations || [];
    return out;
  }

  // What an item says, for comparing versions: an unset finding assertion means present, as
  // in annotations.agreement.
  function spanFacts(span) {
    return { label: span.label,
             assertion: span.label === "FINDING" ? span.assertion || "present" : null,
             concept: span.concept || null, laterality: span.laterality || null };
  }

  function recFacts(rec) {
    return { modality: rec.modality || null, body_region: rec.body_region || null,
             interval: [rec.interval_min_days ?? null, rec.interval_max_days ?? null],
             conditional: Boolean(rec.conditional) };
  }

  const facts = (kind, item) => (kind === "span" ? spanFacts(item) : recFacts(item));
  const signature = (kind, items) => JSON.stringify(items.map((i) => facts(kind, i)));

  function describe(kind, item) {
    if (kind === "rec") {
      const f = recFacts(item);
      const interval = f.interval[0] === null && f.interval[1] === null ? null
        : `${f.interval[0] ?? "?"}–${f.interval[1] ?? "?"} days`;
      return ["recommendation", f.modality || "no modality", f.body_region || "no region",
              interval || "no interval", f.conditional ? "conditional" : null]
        .filter(Boolean).join(" · ");
    }
    const f = spanFacts(item);
    return [f.label.toLowerCase(), f.assertion, f.concept && `concept: ${f.concept}`,
            f.laterality].filter(Boolean).join(" · ");
  }

  // One unit per offset pair (spans and recommendations apart): each annotator's version of it
  // is the list of their items there (empty when they marked nothing).
  function buildUnits() {
    const byKey = new Map();
    const unit = (kind, item) => {
      const key = `${kind}:${item.start}-${item.end}`;
      if (!byKey.has(key)) {
        byKey.set(key, { key, kind, start: item.start, end: item.end,
                         text: task.text.slice(item.start, item.end),
                         versions: annotators.map(() => []) });
      }
      return byKey.get(key);
    };
    annotators.forEach(({ doc }, i) => {
      for (const span of doc.spans) unit("span", span).versions[i].push(span);
      for (const rec of doc.recommendations) unit("rec", rec).versions[i].push(rec);
    });
    const list = [...byKey.values()];
    for (const u of list) {
      u.versions.forEach((v) => v.sort(labelOrder));
      u.signatures = u.versions.map((v) => signature(u.kind, v));
      u.agreed = new Set(u.signatures).size === 1;
      u.kinds = u.agreed ? [] : disagreementKinds(u);
      u.resolution = null; // an annotator index, or "drop"
    }
    list.sort((a, b) => a.start - b.start || a.end - b.end
      || (a.kind === b.kind ? 0 : a.kind === "span" ? -1 : 1));
    return list;
  }

  function disagreementKinds(u) {
    const kinds = [];
    const missing = u.versions.map((v, i) => (v.length ? null : annotators[i].name))
      .filter(Boolean);
    if (missing.length) kinds.push(`missing in ${missing.join(", ")}`);
    const marked = u.versions.filter((v) => v.length);
    const fields = u.kind === "span" ? SPAN_FIELDS : Object.keys(REC_FIELDS);
    for (const field of fields) {
      // A finding has an assertion and an anatomy span none: that follows from the label.
      if (field === "assertion" && kinds.includes("label")) continue;
      const values = new Set(marked.map((v) => JSON.stringify(
        v.map((item) => facts(u.kind, item)[field]))));
      if (values.size > 1) kinds.push(u.kind === "span" ? field : REC_FIELDS[field]);
    }
    return kinds;
  }

  // The gold version of a unit: the agreed one, the chosen one, or nothing (dropped); null
  // while a disagreement is open.
  function goldItems(u) {
    if (u.agreed) return u.versions[0];
    if (u.resolution === null) return null;
    return u.resolution === "drop" ? [] : u.versions[u.resolution];
  }

  const openCount = () => disputes.filter((u) => u.resolution === null).length;

  function goldDocument() {
    const first = annotators[0].doc;
    const spans = [];
    const recommendations = [];
    for (const u of units) {
      for (const item of goldItems(u) || []) {
        const out = { ...clone(item), source: "annotator", status: "accepted" };
        (u.kind === "span" ? spans : recommendations).push(out);
      }
    }
    const document = { id: task.external_id, text: task.text, split: first.split ?? null,
                       modality: first.modality ?? null, spans, recommendations };
    if (first.model_version) document.model_version = first.model_version;
    return document;
  }

  // An adjudicated task opens with the resolutions its gold version implies.
  function resolveFromGold(gold) {
    const doc = normalise(gold);
    for (const u of disputes) {
      const items = (u.kind === "span" ? doc.spans : doc.recommendations)
        .filter((i) => i.start === u.start && i.end === u.end).sort(labelOrder);
      if (!items.length) {
        u.resolution = "drop";
        continue;
      }
      const index = u.signatures.indexOf(signature(u.kind, items));
      u.resolution = index >= 0 ? index : null;
    }
  }

  // --- Status line -----------------------------------------------------------------------

  const setStatus = statusLine({ idle: "", saving: "Saving…", saved: "Gold saved",
                                 error: "Not saved" });

  // --- Rendering -------------------------------------------------------------------------

  const laneColour = (lane) => (lane === 0 ? GOLD_COLOUR : COLOURS[(lane - 1) % COLOURS.length]);

  // A bar's pattern tells the label: solid finding, dashed anatomy, dotted measurement, faint
  // recommendation.
  function bar(colour, kind, label) {
    if (kind === "rec") return `linear-gradient(${colour}59, ${colour}59)`;
    if (label === "ANATOMY") {
      return `repeating-linear-gradient(90deg, ${colour} 0 7px, transparent 7px 10px)`;
    }
    if (label === "MEASUREMENT") {
      return `repeating-linear-gradient(90deg, ${colour} 0 2px, transparent 2px 4px)`;
    }
    return `linear-gradient(${colour}, ${colour})`;
  }

  // Each lane's items as [kind, item]: lane 0 is the gold version so far.
  function laneItems() {
    const gold = [];
    for (const u of units) for (const item of goldItems(u) || []) gold.push([u.kind, item]);
    return [gold, ...annotators.map(({ doc }) => [
      ...doc.spans.map((s) => ["span", s]), ...doc.recommendations.map((r) => ["rec", r])])];
  }

  function renderText() {
    const text = task.text;
    const pre = byId("report-text");
    const lanes = laneItems();
    const depth = lanes.length * LANE_PITCH;
    pre.style.lineHeight = `calc(1.4em + ${depth + 4}px)`;
    const focus = disputes[current];
    const fragment = document.createDocumentFragment();
    for (const [a, b] of pieces(text.length, units)) {
      const piece = document.createElement("span");
      piece.dataset.start = String(a);
      piece.textContent = text.slice(a, b);
      const images = [];
      const positions = [];
      const tips = [];
      lanes.forEach((items, lane) => {
        // Spans drawn over recommendations: the first image is the top one.
        const here = items.filter(([, item]) => item.start <= a && item.end >= b)
          .sort(([k1], [k2]) => (k1 === k2 ? 0 : k1 === "span" ? -1 : 1));
        for (const [kind, item] of here) {
          images.push(bar(laneColour(lane), kind, item.label));
          positions.push(`0 calc(100% - ${depth - (lane + 1) * LANE_PITCH}px)`);
        }
        if (here.length) {
          const who = lane === 0 ? "gold" : `${lane} ${annotators[lane - 1].name}`;
          tips.push(`${who}: ${here.map(([kind, item]) => describe(kind, item)).join("; ")}`);
        }
      });
      if (images.length) {
        piece.classList.add("laned");
        piece.style.backgroundImage = images.join(", ");
        piece.style.backgroundPosition = positions.join(", ");
        piece.style.backgroundSize = images.map(() => `100% ${BAR}px`).join(", ");
        piece.style.paddingBottom = `${depth}px`;
        piece.title = tips.join("\n");
      }
      const disputed = disputes.filter((u) => u.start <= a && u.end >= b);
      if (disputed.length) {
        piece.classList.add("disputed");
        piece.dataset.dispute = String(disputes.indexOf(disputed[0]));
        if (disputed.every((u) => u.resolution !== null)) piece.classList.add("resolved");
      }
      if (focus && focus.start <= a && focus.end >= b) piece.classList.add("current");
      fragment.append(piece);
    }
    pre.replaceChildren(fragment);
  }

  function renderLegend() {
    const chip = (lane, name) => {
      const entry = document.createElement("span");
      entry.className = "lane-chip";
      entry.dataset.lane = String(lane);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = laneColour(lane);
      const key = document.createElement("kbd");
      key.textContent = lane === 0 ? "G" : String(lane);
      entry.append(swatch, key, document.createTextNode(` ${name}`));
      return entry;
    };
    const patterns = document.createElement("span");
    patterns.className = "muted";
    patterns.textContent = "lanes top to bottom · solid finding, dashed anatomy, dotted "
      + "measurement, faint recommendation";
    byId("lanes-legend").replaceChildren(
      chip(0, "gold (so far)"), ...annotators.map((a, i) => chip(i + 1, a.name)), patterns);
  }

  function renderDisputes() {
    const list = byId("disagreements");
    list.replaceChildren(...disputes.map((u, index) => {
      const li = document.createElement("li");
      li.className = "disagreement";
      li.dataset.index = String(index);
      li.dataset.kind = u.kind;
      li.dataset.start = String(u.start);
      li.dataset.end = String(u.end);
      li.dataset.resolution = u.resolution === null ? "" : String(u.resolution);
      if (index === current) li.setAttribute("aria-current", "true");
      const head = document.createElement("p");
      head.className = "disagreement-head";
      const quote = document.createElement("q");
      quote.textContent = u.text;
      const where = document.createElement("span");
      where.className = "muted small";
      where.textContent = ` ${u.kind === "rec" ? "recommendation" : "span"} ${u.start}–${u.end}`;
      const kinds = document.createElement("span");
      kinds.className = "kinds";
      kinds.append(...u.kinds.map((k) => {
        const tag = document.createElement("span");
        tag.className = "kind-tag";
        tag.textContent = k;
        return tag;
      }));
      head.append(quote, where, kinds);

      const options = document.createElement("ul");
      options.className = "options";
      u.versions.forEach((version, i) => {
        const row = document.createElement("li");
        row.className = "option";
        if (u.resolution === i) row.classList.add("chosen");
        const take = document.createElement("button");
        take.type = "button";
        take.className = "take";
        take.dataset.annotator = annotators[i].name;
        const key = document.createElement("kbd");
        key.textContent = String(i + 1);
        take.append(document.createTextNode(`Take ${annotators[i].name} `), key);
        take.addEventListener("click", () => resolve(index, i));
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.backgroundColor = laneColour(i + 1);
        const what = document.createElement("span");
        what.className = "version";
        what.textContent = version.length
          ? version.map((item) => describe(u.kind, item)).join("; ") : "nothing marked";
        if (!version.length) what.classList.add("muted");
        row.append(take, swatch, what);
        options.append(row);
      });
      const drop = document.createElement("button");
      drop.type = "button";
      drop.className = "drop danger";
      const xKey = document.createElement("kbd");
      xKey.textContent = "x";
      drop.append(document.createTextNode("Drop "), xKey);
      drop.addEventListener("click", () => resolve(index, "drop"));
      const outcome = document.createElement("p");
      outcome.className = "outcome";
      outcome.textContent = u.resolution === null ? "Open"
        : u.resolution === "drop" ? "→ dropped from the gold version"
          : `→ ${annotators[u.resolution].name}'s version`;
      li.classList.toggle("is-resolved", u.resolution !== null);
      li.addEventListener("click", (event) => {
        if (!event.target.closest("button")) go(index);
      });
      li.append(head, options, drop, outcome);
      return li;
    }));
    byId("disagreements-empty").hidden = disputes.length > 0;
    const open = openCount();
    byId("disagreement-count").textContent = disputes.length
      ? `(${disputes.length}, ${open} open)` : "(none)";
    const agreed = units.filter((u) => u.agreed).length;
    byId("agreed-count").textContent = `Taken automatically: the ${plural(agreed, "item")} `
      + "all annotators agree on.";
  }

  function renderSaveNote() {
    const open = openCount();
    const note = byId("save-note");
    note.classList.toggle("warn", open > 0);
    if (open) {
      note.textContent = `${plural(open, "disagreement")} still open: resolve every one before `
        + "saving.";
    } else {
      const gold = goldDocument();
      note.textContent = `Ready: the gold version holds ${plural(gold.spans.length, "span")} and `
        + `${plural(gold.recommendations.length, "recommendation")}, all accepted.`;
    }
    byId("task").dataset.open = String(open);
  }

  function renderTaskHead() {
    byId("task-title").textContent = `Report ${task.external_id}`;
    const status = byId("task-status");
    status.textContent = task.status === "adjudicated"
      ? `adjudicated${task.adjudicated_by ? ` by ${task.adjudicated_by}` : ""}` : "open";
    status.className = `status-text task-${task.status}`;
    byId("task").dataset.status = task.status;
    byId("task-annotators").textContent = annotators.length
      ? annotators.map((a, i) => `${i + 1} ${a.name}`).join(", ") : "nobody yet";
    const drafts = task.annotations.filter((a) => a.state !== "submitted").map((a) => a.annotator);
    byId("task-drafts").textContent = drafts.length ? `${drafts.join(", ")} (drafts)` : "none";
  }

  function render() {
    renderText();
    renderDisputes();
    renderSaveNote();
  }

  // Each task with its annotators and each pair's agreement.
  function renderQueue() {
    fillQueue(queue, task ? task.id : null, (item) => [
      item.external_id,
      `${plural(item.submitted.length, "annotator")}: ${item.submitted.join(", ")}`,
      el("ul", { class: "pairs" }, item.agreement.map((pair) => el("li", {
        class: "pair", "data-pair": pair.annotators.join("|"),
        text: `${pair.annotators.join(" × ")}: F1 ${twoDecimals(pair.span_f1)} · `
          + `κ ${twoDecimals(pair.assertion_kappa)}` }))),
    ], openTask);
  }

  // --- Actions ---------------------------------------------------------------------------

  function go(index, { scroll = true } = {}) {
    if (!disputes.length) return;
    current = Math.max(0, Math.min(disputes.length - 1, index));
    byId("disagreements").dataset.current = String(current);
    render();
    if (scroll) {
      const li = byId("disagreements").children[current];
      if (li) li.scrollIntoView({ block: "nearest" });
    }
  }

  function step(by) {
    if (!disputes.length) {
      say("There are no disagreements.");
      return;
    }
    const next = current + by;
    if (next < 0 || next >= disputes.length) {
      say(by > 0 ? "This is the last disagreement." : "This is the first disagreement.");
      return;
    }
    say("");
    go(next);
  }

  // Resolve one disagreement, then move to the next open one (wrapping round).
  function resolve(index, choice) {
    const u = disputes[index];
    if (!u) {
      say("There is no disagreement to resolve.");
      return;
    }
    if (choice !== "drop" && choice !== null && !annotators[choice]) {
      say(`There is no annotator ${choice + 1} on this task.`);
      return;
    }
    u.resolution = choice;
    const taken = choice === null ? "reopened" : choice === "drop" ? "dropped"
      : `took ${annotators[choice].name}'s version`;
    say(`“${u.text}”: ${taken}.`);
    let next = index;
    if (choice !== null) {
      for (let k = 1; k <= disputes.length; k += 1) {
        const candidate = (index + k) % disputes.length;
        if (disputes[candidate].resolution === null) {
          next = candidate;
          break;
        }
      }
    }
    go(next);
  }

  async function saveGold() {
    if (!task || saving) return;
    const open = openCount();
    if (open) {
      say(`Resolve the ${plural(open, "open disagreement")} first (j / k to find them).`);
      const first = disputes.findIndex((u) => u.resolution === null);
      go(first);
      return;
    }
    if (!annotators.length) {
      say("Nobody has submitted this task: there is nothing to adjudicate.");
      return;
    }
    const saved = task;
    const body = JSON.stringify({ document: goldDocument(), adjudicator });
    saving = true;
    setStatus("saving");
    try {
      await request(`${API}/tasks/${saved.id}/gold`, { method: "PUT", body });
    } catch (error) {
      setStatus("error", error.message);
      return;
    } finally {
      saving = false;
    }
    await loadQueue().catch(() => {});
    if (task === saved) await openTask(saved.id, { keepMessage: true });
    setStatus("saved", `report ${saved.external_id} is adjudicated`);
    say(`Saved the gold version of report ${saved.external_id}.`);
  }

  // --- Tasks -----------------------------------------------------------------------------

  async function loadQueue() {
    const data = await request(`${API}/adjudication?limit=${QUEUE_LIMIT}`);
    queue = data.items;
    renderQueue();
  }

  async function openTask(id, { keepMessage = false } = {}) {
    const seq = ++loadSeq;
    byId("task-view").setAttribute("aria-busy", "true");
    let info;
    let work;
    try {
      [info, work] = await Promise.all([request(`${API}/tasks/${id}`),
                                        request(`${API}/tasks/${id}/annotations`)]);
    } catch (error) {
      showError(`Task ${id} could not be loaded: ${error.message}`);
      byId("task-view").setAttribute("aria-busy", "false");
      return;
    }
    if (seq !== loadSeq) return;
    showError("");
    task = { ...info, text: work.text, gold: work.gold, annotations: work.annotations,
             adjudicated_by: work.gold ? work.gold.annotator : null };
    annotators = work.annotations.filter((a) => a.state === "submitted")
      .map((a) => ({ name: a.annotator, doc: normalise(a.document) }));
    units = buildUnits();
    disputes = units.filter((u) => !u.agreed);
    if (task.gold) resolveFromGold(task.gold);
    const firstOpen = disputes.findIndex((u) => u.resolution === null);
    current = disputes.length ? Math.max(0, firstOpen) : -1;

    replaceParam("task", String(id));
    byId("pick").hidden = true;
    byId("task").hidden = false;
    byId("task").dataset.taskId = String(id);
    byId("disagreements").dataset.current = String(current);
    renderTaskHead();
    renderLegend();
    render();
    renderQueue();
    if (!keepMessage) {
      setStatus("idle");
      if (annotators.length < 2) {
        say(`Only ${plural(annotators.length, "submitted annotation")}: there is nothing to `
            + "compare.");
      } else if (task.status === "adjudicated") {
        say("Already adjudicated: saving again replaces the gold version.");
      } else {
        say("");
      }
    }
    byId("task-view").setAttribute("aria-busy", "false");
    byId("workspace").dataset.state = "ready";
    byId("report-text").focus({ preventScroll: true });
  }

  // --- Keyboard --------------------------------------------------------------------------

  function onKey(event) {
    const target = event.target;
    const editable = target.matches && target.matches("input, select, textarea");
    const { key } = event;
    if (key === "Escape") {
      if (!byId("help").hidden) toggleHelp(false);
      return;
    }
    if (key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      saveGold();
      return;
    }
    if (editable || event.ctrlKey || event.metaKey || event.altKey) return;
    if (key === "?") {
      toggleHelp();
    } else if (!task) {
      return;
    } else if (key === "j" || key === "k") {
      step(key === "j" ? 1 : -1);
    } else if (/^[1-9]$/.test(key)) {
      resolve(current, Number(key) - 1);
    } else if (key === "x") {
      resolve(current, "drop");
    } else if (key === "u") {
      resolve(current, null);
    } else {
      return;
    }
    event.preventDefault();
  }

  // --- Start -----------------------------------------------------------------------------

  function bind() {
    bindShortcuts(onKey);
    byId("save-gold").addEventListener("click", saveGold);
    byId("report-text").addEventListener("click", (event) => {
      const el = event.target.closest("[data-dispute]");
      if (el) go(Number(el.dataset.dispute));
    });
  }

  async function start() {
    if (!signIn("adjudicator", adjudicator)) return;
    bind();
    try {
      await loadQueue();
    } catch (error) {
      showError(`The tasks to adjudicate could not be loaded: ${error.message}`);
      byId("workspace").dataset.state = "error";
      return;
    }
    const wanted = Number(params.get("task"));
    if (wanted) await openTask(wanted);
    else byId("workspace").dataset.state = "ready";
  }

  start();
})();
