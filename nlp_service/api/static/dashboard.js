// Follow-up audit dashboard: reads the audit API and draws KPI tiles, SVG charts, the overdue
// worklist and the QPP measures; navigators act on worklist rows (decisions with a reason,
// assignment, notes) and everyone sees each row's history. Plain DOM only; data is always set
// as text, never as HTML.
"use strict";

(() => {
  const { byId, el, fetchJSON, plural, request } = window.radnlp;
  const API = "/api/v1/audit";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PAGE_SIZE = 50;
  const CSV_LIMIT = 10000;
  const MEASURES = ["364", "405", "406"];
  const DAY_MS = 86400000;
  const COLORS = { completion: "#1d4ed8", onTime: "#047857", overdue: "#b91c1c", grid: "#d4d4d8",
                   axis: "#52525b", text: "#18181b" };

  // Which follow-ups the worklist shows: the states asked for (none: every state).
  const SHOW = {
    overdue: { status: ["overdue"], heading: "Overdue worklist", noun: "overdue follow-up",
               caption: "Overdue follow-up recommendations, earliest due first" },
    open: { status: ["open"], heading: "Open follow-ups, not yet due", noun: "open follow-up",
            caption: "Open follow-up recommendations, earliest due first" },
    decided: { status: ["not_needed", "completed_elsewhere", "not_a_recommendation",
                        "cancelled"],
               heading: "Decided follow-ups", noun: "decided follow-up",
               caption: "Follow-up recommendations someone decided on, earliest due first" },
    all: { status: null, heading: "All follow-ups", noun: "follow-up",
           caption: "Every follow-up recommendation, earliest due first" },
  };
  const DECIDED = new Set(SHOW.decided.status);
  // What each action asks and sends; "decision" actions post a status with a reason.
  const ACTIONS = {
    not_needed: { button: "Not needed", title: "Mark not needed", decision: true,
                  done: "marked not needed" },
    completed_elsewhere: { button: "Completed elsewhere", title: "Mark completed elsewhere",
                           decision: true, done: "marked completed elsewhere" },
    not_a_recommendation: {
      button: "Not a recommendation", title: "Mark not a recommendation (extraction error)",
      decision: true, done: "marked not a recommendation",
      hint: "It leaves the rates, and the report is queued for annotation with this "
        + "recommendation removed, so the correction trains the next model." },
    open: { button: "Reopen", title: "Reopen (undo the decision)", decision: true,
            done: "reopened" },
    assign: { button: "Assign", title: "Assign", label: "Assign to (leave empty to unassign)",
              done: "assigned" },
    note: { button: "Add note", title: "Add a note", label: "Note", done: "noted" },
  };
  const EVENT_NAMES = { created: "Created", rederived: "Re-derived", completed: "Completed",
                        unlinked: "Completing exam unlinked", withdrawn: "Withdrawn",
                        unassigned: "Unassigned", note: "Note" };

  // Responses of an older query (the date changed meanwhile) are dropped.
  let generation = 0;
  let worklistOffset = 0;
  let current = null;
  let me = { can_act: false, tracked_kinds: [] };
  let acting = null; // { item, action, opener } while the action dialog is open

  const pad = (n) => String(n).padStart(2, "0");

  function localToday() {
    const d = new Date();
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  // The chosen day counts up to its last second (UTC), so "as of 1 March" includes 1 March.
  const asOfParam = (day) => `${day}T23:59:59Z`;

  // Times without an offset are UTC (the API stores UTC); Date would read them as local.
  function parseTime(value) {
    if (!value) return null;
    return new Date(/(Z|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`);
  }

  function isoDay(value) {
    const t = parseTime(value);
    return t ? t.toISOString().slice(0, 10) : "";
  }

  const percent = (rate) => (rate === null || rate === undefined
    ? "–" : `${(rate * 100).toFixed(1)}%`);

  function apiUrl(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value === undefined || value === null) continue;
      for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v));
    }
    return `${path}?${query}`;
  }

  const getJSON = (url) => fetchJSON(url, { headers: { Accept: "application/json" } },
    (response, detail) => `${response.status} from ${url}: `
      + `${JSON.stringify(detail) || response.statusText}`);

  function svgEl(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Round tick steps (1, 2, 5 × 10^n) from 0 up to at least max.
  function ticks(max, wanted = 5) {
    if (max <= 0) return [0, 1];
    const raw = max / wanted;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw));
    const out = [];
    for (let v = 0; v < max + step; v += step) out.push(v);
    return out;
  }

  function chartFrame(container, { width, height, title, description }) {
    const id = container.id;
    const svg = svgEl("svg", {
      viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": title,
      "aria-describedby": `${id}-desc`, preserveAspectRatio: "xMinYMin meet",
    });
    svg.append(svgEl("title", { id: `${id}-title` }, title));
    svg.append(svgEl("desc", { id: `${id}-desc` }, description));
    svg.append(svgEl("text", { x: 8, y: 20, class: "chart-title", fill: COLORS.text }, title));
    container.replaceChildren(svg);
    return svg;
  }

  // Horizontal bars: one row per category, value labels at the bar ends.
  function barChart(container, { title, rows, axisLabel, empty }) {
    const width = 480;
    const rowHeight = 30;
    const left = 150;
    const right = 40;
    const top = 40;
    const bottom = 52;
    const height = top + Math.max(rows.length, 1) * rowHeight + bottom;
    const description = rows.length
      ? rows.map((r) => `${r.label}: ${r.value}`).join("; ") : empty;
    const svg = chartFrame(container, { width, height, title, description });
    const plotWidth = width - left - right;
    const scaleTicks = ticks(Math.max(0, ...rows.map((r) => r.value)));
    const max = scaleTicks[scaleTicks.length - 1];
    const x = (v) => left + (v / max) * plotWidth;
    const bottomY = top + Math.max(rows.length, 1) * rowHeight;
    for (const t of scaleTicks) {
      svg.append(svgEl("line", { x1: x(t), x2: x(t), y1: top, y2: bottomY, stroke: COLORS.grid }));
      svg.append(svgEl("text", { x: x(t), y: bottomY + 16, "text-anchor": "middle",
                                 class: "tick", fill: COLORS.axis }, String(t)));
    }
    svg.append(svgEl("text", { x: left + plotWidth / 2, y: height - 10, "text-anchor": "middle",
                               class: "axis-label", fill: COLORS.axis }, axisLabel));
    if (!rows.length) {
      svg.append(svgEl("text", { x: left + plotWidth / 2, y: top + rowHeight / 2 + 5,
                                 "text-anchor": "middle", class: "empty", fill: COLORS.axis },
                       empty));
      return;
    }
    rows.forEach((row, i) => {
      const y = top + i * rowHeight;
      const label = row.label.length > 22 ? `${row.label.slice(0, 21)}…` : row.label;
      const name = svgEl("text", { x: left - 8, y: y + rowHeight / 2 + 4, "text-anchor": "end",
                                   class: "category", fill: COLORS.text }, label);
      name.append(svgEl("title", {}, row.label));
      const bar = svgEl("rect", { x: left, y: y + 5, width: Math.max(x(row.value) - left, 1),
                                  height: rowHeight - 10, fill: COLORS.overdue, class: "bar",
                                  "data-label": row.label, "data-value": row.value });
      bar.append(svgEl("title", {}, `${row.label}: ${row.value}`));
      svg.append(name, bar, svgEl("text", { x: x(row.value) + 6, y: y + rowHeight / 2 + 4,
                                            class: "value", fill: COLORS.text },
                                  String(row.value)));
    });
    svg.append(svgEl("line", { x1: left, x2: left, y1: top, y2: bottomY, stroke: COLORS.axis }));
  }

  // Completion and on-time rate by month of report; months with nothing due have no point.
  function complianceChart(container, groups) {
    const width = 1100;
    const height = 340;
    const margin = { left: 64, right: 24, top: 56, bottom: 64 };
    const series = [
      { key: "completion_rate", name: "Completion rate", color: COLORS.completion, dash: null },
      { key: "on_time_rate", name: "On-time rate", color: COLORS.onTime, dash: "6 4" },
    ];
    const withRates = groups.filter((g) => g.completion_rate !== null);
    const title = "Follow-up compliance by month of report";
    const description = withRates.length
      ? withRates.map((g) => `${g.key}: completion ${percent(g.completion_rate)}, on time `
                     + `${percent(g.on_time_rate)} of ${g.due} due`).join("; ")
      : "No follow-ups were due in these months.";
    const svg = chartFrame(container, { width, height, title, description });
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const y = (rate) => margin.top + plotH * (1 - rate);
    const band = plotW / Math.max(groups.length, 1);
    const x = (i) => margin.left + band * (i + 0.5);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      svg.append(svgEl("line", { x1: margin.left, x2: width - margin.right, y1: y(t), y2: y(t),
                                 stroke: COLORS.grid }));
      svg.append(svgEl("text", { x: margin.left - 8, y: y(t) + 4, "text-anchor": "end",
                                 class: "tick", fill: COLORS.axis }, `${t * 100}%`));
    }
    const every = Math.ceil(groups.length / 12);
    groups.forEach((g, i) => {
      if (i % every === 0) {
        svg.append(svgEl("text", { x: x(i), y: margin.top + plotH + 18, "text-anchor": "middle",
                                   class: "tick", fill: COLORS.axis }, g.key ?? "unknown"));
      }
    });
    svg.append(svgEl("line", { x1: margin.left, x2: margin.left, y1: margin.top,
                               y2: margin.top + plotH, stroke: COLORS.axis }));
    svg.append(svgEl("line", { x1: margin.left, x2: width - margin.right, y1: margin.top + plotH,
                               y2: margin.top + plotH, stroke: COLORS.axis }));
    svg.append(svgEl("text", { x: margin.left + plotW / 2, y: height - 14, "text-anchor": "middle",
                               class: "axis-label", fill: COLORS.axis }, "Month of report"));
    svg.append(svgEl("text", {
      x: 0, y: 0, transform: `translate(16 ${margin.top + plotH / 2}) rotate(-90)`,
      "text-anchor": "middle", class: "axis-label", fill: COLORS.axis,
    }, "Share of follow-ups due"));
    series.forEach((s, n) => {
      const legendX = width - margin.right - 300 + n * 150;
      svg.append(svgEl("line", { x1: legendX, x2: legendX + 24, y1: 36, y2: 36, stroke: s.color,
                                 "stroke-width": 3, "stroke-dasharray": s.dash }));
      svg.append(svgEl("text", { x: legendX + 30, y: 40, class: "legend", fill: COLORS.text },
                       s.name));
      // A line segment only joins neighbouring months that both have a rate.
      let path = "";
      let previous = false;
      groups.forEach((g, i) => {
        const rate = g[s.key];
        if (rate === null || rate === undefined) { previous = false; return; }
        path += `${previous ? "L" : "M"}${x(i).toFixed(1)} ${y(rate).toFixed(1)} `;
        previous = true;
      });
      if (path) {
        svg.append(svgEl("path", { d: path.trim(), fill: "none", stroke: s.color,
                                   "stroke-width": 2.5, "stroke-dasharray": s.dash,
                                   class: `series series-${s.key}` }));
      }
      groups.forEach((g, i) => {
        const rate = g[s.key];
        if (rate === null || rate === undefined) return;
        const point = svgEl("circle", { cx: x(i), cy: y(rate), r: 4.5, fill: s.color,
                                        class: "point", "data-month": g.key,
                                        "data-series": s.key, "data-rate": rate });
        point.append(svgEl("title", {}, `${g.key}: ${s.name.toLowerCase()} ${percent(rate)} `
                                        + `(${g.due} due)`));
        svg.append(point);
      });
    });
    if (!withRates.length) {
      svg.append(svgEl("text", { x: margin.left + plotW / 2, y: margin.top + plotH / 2,
                                 "text-anchor": "middle", class: "empty", fill: COLORS.axis },
                       "No follow-ups due yet"));
    }
  }

  function renderKpis(overall) {
    byId("kpi-due").textContent = String(overall.due);
    byId("kpi-completion-rate").textContent = percent(overall.completion_rate);
    byId("kpi-on-time-rate").textContent = percent(overall.on_time_rate);
    byId("kpi-overdue").textContent = String(overall.overdue);
    const done = overall.completed_on_time + overall.completed_late + overall.completed_elsewhere;
    byId("kpi-completion-note").textContent = `${done} of ${overall.due} completed`;
    byId("kpi-on-time-note").textContent =
      `${overall.completed_on_time} of ${overall.due} within the window`;
    byId("kpi-open-note").textContent = `${overall.open} open, not yet due`;
  }

  function overdueRows(groups) {
    return groups.filter((g) => g.overdue > 0)
      .map((g) => ({ label: g.key ?? "unknown", value: g.overdue }))
      .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
  }

  function reportLink(item) {
    const href = `/audit/reports/${encodeURIComponent(item.report_id)}?start=${item.start}`
      + `&end=${item.end}#recommendation`;
    return el("a", { href, class: "report-link", text: item.text });
  }

  const words = (value) => String(value || "–").replaceAll("_", " ");

  function actionButton(item, action) {
    const spec = ACTIONS[action];
    const button = el("button", { type: "button", class: `action action-${action}`,
                                  "data-action": action,
                                  "aria-label": `${spec.button}: ${item.accession}`,
                                  text: spec.button });
    button.addEventListener("click", () => openAction(item, action, button));
    return button;
  }

  function historyButton(item) {
    const button = el("button", { type: "button", class: "action action-history",
                                  "data-action": "history", "aria-expanded": "false",
                                  "aria-controls": `history-${item.id}`,
                                  "aria-label": `History: ${item.accession}`, text: "History" });
    button.addEventListener("click", () => toggleHistory(item, button));
    return button;
  }

  // The state, kind and assignee, then the actions (navigators) and the history (everyone).
  function statusCell(item) {
    const buttons = [];
    if (me.can_act) {
      const decisions = DECIDED.has(item.status) ? ["open"]
        : ["not_needed", "completed_elsewhere", "not_a_recommendation"];
      for (const action of [...decisions, "assign", "note"]) {
        buttons.push(actionButton(item, action));
      }
    }
    buttons.push(historyButton(item));
    return el("td", { class: "status" }, [
      el("span", { class: `state state-${item.status}`, text: words(item.status) }),
      el("span", { class: "kind", text: words(item.kind) }),
      ...(item.assignee
        ? [el("span", { class: "assignee", text: `Assigned to ${item.assignee}` })] : []),
      el("div", { class: "action-group" }, buttons),
    ]);
  }

  function renderWorklist(page) {
    const asOf = parseTime(page.as_of);
    const body = byId("worklist").tBodies[0];
    const show = SHOW[current.show];
    const rows = page.items.map((item) => {
      const dueEnd = parseTime(item.due_end);
      const days = dueEnd && item.status === "overdue"
        ? Math.floor((asOf - dueEnd) / DAY_MS) : "–";
      const region = [item.modalities || item.modality, item.body_region]
        .filter(Boolean).join(" ");
      const verdict = el("span", { class: `verdict verdict-${item.guideline_verdict || "none"}`,
                                   text: (item.guideline_verdict || "–").replaceAll("_", " ") });
      const cells = [
        el("th", { scope: "row", text: item.accession }),
        el("td", { text: item.patient_mrn }),
        el("td", { text: item.finding || "–" }),
        el("td", { text: region || "–" }),
        el("td", { class: "date", text: isoDay(item.report_time) }),
        el("td", { class: "date", text: isoDay(item.due_end) }),
        el("td", { class: item.status === "overdue" ? "num days-overdue" : "num",
                   text: String(days) }),
        el("td", {}, [verdict, ...(item.guideline_reason
          ? [el("span", { class: "reason", text: item.guideline_reason })] : [])]),
        el("td", {}, [reportLink(item)]),
        statusCell(item),
      ];
      return el("tr", { "data-id": item.id, "data-accession": item.accession,
                        "data-status": item.status }, cells);
    });
    if (!rows.length) {
      rows.push(el("tr", { class: "empty-row" }, [
        el("td", { colspan: 10, text: `No ${show.noun}s on this date.` })]));
    }
    body.replaceChildren(...rows);
    byId("worklist-heading").textContent = show.heading;
    byId("worklist-caption").textContent = show.caption;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    byId("worklist-count").textContent = page.total
      ? plural(page.total, show.noun)
        + (page.total > page.items.length ? ` (showing ${first}–${last})` : "")
      : `No ${show.noun}s.`;
    byId("worklist").dataset.total = String(page.total);
    byId("worklist-prev").disabled = page.offset === 0;
    byId("worklist-next").disabled = last >= page.total;
  }

  function renderMeasure(figures) {
    const box = byId(`measure-${figures.measure}`);
    const direction = figures.inverse
      ? "Inverse measure: lower is better." : "Higher is better.";
    const csv = apiUrl(`${API}/measures/${figures.measure}`, { as_of: current.asOf,
                                                             format: "csv" });
    const item = (name, value, cls) => [el("dt", { text: name }),
                                        el("dd", { class: cls, text: String(value) })];
    box.replaceChildren(
      el("h3", { text: `Measure ${figures.measure}` }),
      el("p", { class: "measure-title", text: figures.title }),
      el("dl", { class: "measure-figures" }, [
        ...item("Numerator", figures.numerator, "numerator"),
        ...item("Denominator", figures.denominator, "denominator"),
        ...item("Rate", percent(figures.rate), "rate"),
        ...item("Exclusions", figures.exclusions, "exclusions"),
      ]),
      el("p", { class: `direction ${figures.inverse ? "inverse" : ""}`, text: direction }),
      el("a", { href: csv, download: "", class: "measure-csv",
                text: `Measure ${figures.measure} accessions (CSV)` }),
    );
  }

  function setCsvLinks(common) {
    byId("csv-worklist").href = apiUrl(`${API}/recommendations`, {
      ...common, status: SHOW[current.show].status, sort: "due_end", limit: CSV_LIMIT,
      format: "csv" });
    byId("csv-summary").href = apiUrl(`${API}/summary`, {
      ...common, group_by: "month", format: "csv" });
    byId("csv-summary-modality").href = apiUrl(`${API}/summary`, {
      ...common, group_by: "modality", format: "csv" });
    byId("csv-summary-finding").href = apiUrl(`${API}/summary`, {
      ...common, group_by: "finding", format: "csv" });
  }

  function setBusy() {
    const main = byId("dashboard");
    main.dataset.state = "loading";
    main.setAttribute("aria-busy", "true");
    byId("error").hidden = true;
  }

  function setReady() {
    const main = byId("dashboard");
    main.dataset.asOf = current.asOf;
    main.dataset.state = "ready";
    main.setAttribute("aria-busy", "false");
    byId("status-line").textContent = `Figures as of ${current.day}, end of day (UTC)`
      + (current.includeConditional ? ", conditional recommendations included." : ".");
  }

  function showError(error) {
    const main = byId("dashboard");
    main.dataset.state = "error";
    main.setAttribute("aria-busy", "false");
    byId("error").textContent = `Could not load the audit figures: ${error.message}`;
    byId("error").hidden = false;
    byId("status-line").textContent = "";
  }

  function worklistQuery() {
    return apiUrl(`${API}/recommendations`, {
      as_of: current.asOf, include_conditional: current.includeConditional, kind: current.kinds,
      status: SHOW[current.show].status, sort: "due_end", offset: worklistOffset,
      limit: PAGE_SIZE });
  }

  const kindBoxes = () => [...byId("kinds").querySelectorAll("input[name=kind]")];
  const chosenKinds = () => kindBoxes().filter((box) => box.checked).map((box) => box.value);

  async function loadAll() {
    const day = byId("as-of").value || localToday();
    const includeConditional = byId("include-conditional").checked;
    const show = SHOW[byId("worklist-show").value] ? byId("worklist-show").value : "overdue";
    current = { day, asOf: asOfParam(day), includeConditional, kinds: chosenKinds(), show };
    worklistOffset = 0;
    const common = { as_of: current.asOf, include_conditional: includeConditional,
                     kind: current.kinds };
    const summary = (groupBy) => getJSON(apiUrl(`${API}/summary`, { ...common,
                                                                     group_by: groupBy }));
    const params = new URLSearchParams({ as_of: day });
    if (includeConditional) params.set("include_conditional", "true");
    for (const kind of current.kinds) params.append("kind", kind);
    if (show !== "overdue") params.set("show", show);
    history.replaceState(null, "", `?${params}`);
    setCsvLinks(common);
    const mine = ++generation;
    setBusy();
    try {
      const [months, modalities, findings, worklist, ...measures] = await Promise.all([
        summary("month"), summary("modality"), summary("finding"), getJSON(worklistQuery()),
        ...MEASURES.map((n) => getJSON(apiUrl(`${API}/measures/${n}`, { as_of: current.asOf }))),
      ]);
      if (mine !== generation) return;
      renderKpis(months.overall);
      complianceChart(byId("chart-compliance"), months.groups);
      barChart(byId("chart-overdue-modality"), {
        title: "Overdue follow-ups by recommended modality", rows: overdueRows(modalities.groups),
        axisLabel: "Overdue follow-ups", empty: "None overdue" });
      barChart(byId("chart-overdue-finding"), {
        title: "Overdue follow-ups by finding", rows: overdueRows(findings.groups),
        axisLabel: "Overdue follow-ups", empty: "None overdue" });
      renderWorklist(worklist);
      measures.forEach(renderMeasure);
      setReady();
    } catch (error) {
      if (mine === generation) showError(error);
    }
  }

  async function loadWorklistPage(delta) {
    worklistOffset = Math.max(0, worklistOffset + delta * PAGE_SIZE);
    const mine = ++generation;
    setBusy();
    try {
      const page = await getJSON(worklistQuery());
      if (mine !== generation) return;
      renderWorklist(page);
      setReady();
    } catch (error) {
      if (mine === generation) showError(error);
    }
  }

  // --- History and actions ----------------------------------------------------------------

  function eventTitle(event) {
    if (event.kind === "manual") {
      return event.status === "open" ? "Reopened" : `Marked ${words(event.status)}`;
    }
    if (event.kind === "assigned") return `Assigned to ${event.assignee}`;
    return EVENT_NAMES[event.kind] || words(event.kind);
  }

  function renderHistory(events) {
    if (!events.length) return el("p", { class: "muted", text: "No events." });
    return el("ol", { class: "history" }, events.map((event) => {
      const when = parseTime(event.at);
      const stamp = when ? `${when.toISOString().slice(0, 16).replace("T", " ")} UTC` : "";
      const parts = [
        el("time", { datetime: when ? when.toISOString() : null, text: stamp }),
        el("span", { class: "event-title", text: eventTitle(event) }),
        el("span", { class: "event-actor", text: `by ${event.actor}`
          + (event.actor_key_id ? ` (key ${event.actor_key_id})` : "") }),
      ];
      if (event.reason) parts.push(el("span", { class: "event-reason", text: event.reason }));
      if (event.annotation_task_id) {
        parts.push(el("a", { class: "event-task",
                             href: `/annotate?task=${encodeURIComponent(event.annotation_task_id)}`,
                             text: `annotation task ${event.annotation_task_id}` }));
      }
      return el("li", { "data-kind": event.kind }, parts);
    }));
  }

  async function toggleHistory(item, button) {
    const open = byId(`history-${item.id}`);
    if (open) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const cell = el("td", { colspan: 10 }, [el("p", { class: "muted", text: "Loading…" })]);
    const row = el("tr", { id: `history-${item.id}`, class: "history-row",
                           "aria-label": `History of ${item.accession}` }, [cell]);
    button.closest("tr").after(row);
    button.setAttribute("aria-expanded", "true");
    try {
      const detail = await getJSON(apiUrl(`${API}/recommendations/${item.id}`,
                                          { as_of: current.asOf }));
      cell.replaceChildren(el("h3", { class: "visually-hidden",
                                      text: `History of ${item.accession}` }),
                           renderHistory(detail.history));
      row.dataset.state = "ready";
    } catch (error) {
      cell.replaceChildren(el("p", { class: "error", role: "alert",
                                     text: `Could not load the history: ${error.message}` }));
    }
  }

  function openAction(item, action, opener) {
    const spec = ACTIONS[action];
    acting = { item, action, opener };
    const naming = action === "assign";
    byId("action-title").textContent = spec.title;
    byId("action-context").textContent = `${item.accession}: “${item.text}”`;
    byId("action-label").textContent = spec.label || "Reason (required)";
    byId("action-label").htmlFor = naming ? "action-name" : "action-input";
    byId("action-input").hidden = naming;
    byId("action-input").required = !naming;
    byId("action-input").value = "";
    byId("action-name").hidden = !naming;
    byId("action-name").value = naming ? (item.assignee || "") : "";
    byId("action-hint").textContent = spec.hint || "";
    byId("action-hint").hidden = !spec.hint;
    byId("action-error").hidden = true;
    byId("action-submit").disabled = false;
    byId("action-submit").textContent = spec.button;
    byId("action-dialog").showModal();
    byId(naming ? "action-name" : "action-input").focus();
  }

  function closeAction() {
    const dialog = byId("action-dialog");
    if (dialog.open) dialog.close();
  }

  async function submitAction(event) {
    event.preventDefault();
    if (!acting) return;
    const { item, action } = acting;
    const spec = ACTIONS[action];
    const text = byId("action-input").value.trim();
    const name = byId("action-name").value.trim();
    let url;
    let body;
    if (spec.decision) {
      url = `${API}/recommendations/${item.id}/decision`;
      body = { status: action, reason: text };
    } else if (action === "assign") {
      url = `${API}/recommendations/${item.id}/assignment`;
      body = { assignee: name || null };
    } else {
      url = `${API}/recommendations/${item.id}/notes`;
      body = { text };
    }
    if (action !== "assign" && !text) {
      byId("action-error").textContent = spec.decision ? "Give a reason." : "Write a note.";
      byId("action-error").hidden = false;
      byId("action-input").focus();
      return;
    }
    byId("action-submit").disabled = true;
    try {
      const answer = await request(url, { method: "POST", body: JSON.stringify(body) });
      acting = null;
      closeAction();
      let done = `${item.accession}: ${spec.done}`;
      if (action === "assign") done = name ? `${item.accession}: assigned to ${name}`
        : `${item.accession}: unassigned`;
      if (answer.annotation_task_id) {
        done += `; annotation task ${answer.annotation_task_id} queued with the correction`;
      }
      await loadAll();
      byId("action-status").textContent = `${done}.`;
      byId("worklist-heading").focus();
    } catch (error) {
      byId("action-error").textContent = `Not saved: ${error.message}`;
      byId("action-error").hidden = false;
      byId("action-submit").disabled = false;
    }
  }

  async function loadMe() {
    try {
      me = await getJSON(`${API}/me`);
    } catch (error) {
      showError(error);
      return;
    }
    if (me.name) {
      byId("who").textContent = `Signed in as ${me.name} (${me.roles.join(", ")})`;
      byId("who").hidden = false;
    }
    byId("dashboard").dataset.canAct = String(me.can_act);
  }

  async function start() {
    const query = new URLSearchParams(location.search);
    const wanted = query.get("as_of");
    byId("as-of").value = wanted && /^\d{4}-\d{2}-\d{2}$/.test(wanted) ? wanted : localToday();
    byId("include-conditional").checked = query.get("include_conditional") === "true";
    byId("worklist-show").value = SHOW[query.get("show")] ? query.get("show") : "overdue";
    await loadMe();
    const kinds = query.getAll("kind");
    const checked = new Set(kinds.length ? kinds : me.tracked_kinds);
    for (const box of kindBoxes()) box.checked = checked.has(box.value);
    if (!chosenKinds().length) for (const box of kindBoxes()) box.checked = true;
    for (const box of kindBoxes()) {
      box.addEventListener("change", () => {
        // At least one kind: an empty choice would mean the rules' default, not "none".
        if (!chosenKinds().length) box.checked = true;
        loadAll();
      });
    }
    byId("worklist-show").addEventListener("change", loadAll);
    byId("action-form").addEventListener("submit", submitAction);
    byId("action-cancel").addEventListener("click", closeAction);
    byId("action-dialog").addEventListener("close", () => {
      const opener = acting && acting.opener;
      acting = null;
      if (opener && opener.isConnected) opener.focus();
    });
    byId("as-of").addEventListener("change", () => { if (byId("as-of").value) loadAll(); });
    byId("include-conditional").addEventListener("change", loadAll);
    byId("today").addEventListener("click", () => { byId("as-of").value = localToday(); loadAll(); });
    byId("controls").addEventListener("submit", (event) => { event.preventDefault(); loadAll(); });
    byId("worklist-prev").addEventListener("click", () => loadWorklistPage(-1));
    byId("worklist-next").addEventListener("click", () => loadWorklistPage(1));
    loadAll();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
