// Critical results and turnaround: reads /api/v1/audit/critical(/compliance) and
// /api/v1/audit/turnaround, and draws tables and SVG bar charts. Text is set as text only.
"use strict";

(() => {
  const { byId, el, request } = window.radnlp;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const GROUP_NAMES = { month: "Month", modality: "Modality", radiologist: "Radiologist",
                        category: "ACR category" };

  function svgEl(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Horizontal bars: rows of {label, value}; values in [0, max].
  function barChart(container, id, title, rows, max, format) {
    const rowHeight = 26, left = 190, width = 640, top = 32;
    const height = top + rows.length * rowHeight + 12;
    const svg = svgEl("svg", { id, viewBox: `0 0 ${width} ${height}`, role: "img",
                               "aria-labelledby": `${id}-title` });
    svg.append(svgEl("title", { id: `${id}-title` }, title));
    svg.append(svgEl("text", { x: 8, y: 20, class: "chart-title" }, title));
    const scale = (value) => (max > 0 ? (value / max) * (width - left - 80) : 0);
    rows.forEach((row, i) => {
      const y = top + i * rowHeight;
      svg.append(svgEl("text", { x: left - 8, y: y + 17, "text-anchor": "end" }, row.label));
      const bar = svgEl("rect", { x: left, y: y + 4, height: rowHeight - 8, fill: "#3b6ea5",
                                  width: Math.max(scale(row.value), 1), class: "bar",
                                  "data-label": row.label, "data-value": String(row.value) });
      bar.append(svgEl("title", {}, `${row.label}: ${format(row.value)}`));
      svg.append(bar, svgEl("text", { x: left + scale(row.value) + 6, y: y + 17 },
                            format(row.value)));
    });
    container.replaceChildren(svg);
  }

  function cell(text, number = false) {
    return el("td", { text: text === null || text === undefined ? "–" : String(text),
                      class: number ? "number" : null });
  }

  function countCell(group, verdict) {
    const td = cell(group[verdict], true);
    const reports = group.reports[verdict];
    if (reports.length) td.append(el("div", { class: "reports", text: reports.join(", ") }));
    return td;
  }

  async function loadCompliance() {
    const group = byId("group").value;
    const data = await request(`/api/v1/audit/critical/compliance?group=${group}`);
    byId("group-heading").textContent = GROUP_NAMES[group];
    byId("compliance-table").tBodies[0].replaceChildren(...data.groups.map((g) => el("tr", {
      "data-group": g[group] }, [cell(g[group]), cell(g.critical, true),
      countCell(g, "in_time"), countCell(g, "late"), countCell(g, "not_documented"),
      cell(`${(g.rate_in_time * 100).toFixed(1)}%`, true)])));
    barChart(byId("compliance-chart"), "compliance-svg",
             `Communicated in time, by ${GROUP_NAMES[group].toLowerCase()}`,
             data.groups.map((g) => ({ label: String(g[group]), value: g.rate_in_time })), 1,
             (value) => `${(value * 100).toFixed(1)}%`);
  }

  async function loadCritical() {
    const data = await request("/api/v1/audit/critical");
    byId("critical-table").tBodies[0].replaceChildren(...data.items.map((item) => el("tr", {
      "data-accession": item.accession }, [cell(item.accession), cell(item.concept),
      cell(item.category), cell(item.report_time), cell(item.communicated_at),
      cell(item.minutes_to_communication, true),
      cell(item.communication ? item.communication.recipient : null),
      cell(item.compliance.replace("_", " "))])));
  }

  async function loadTurnaround() {
    const data = await request("/api/v1/audit/turnaround");
    byId("turnaround-table").tBodies[0].replaceChildren(...data.items.map((row) => el("tr", {},
      [cell(row.modality), cell(row.month), cell(row.interval.replaceAll("_", " ")),
       cell(row.exams, true), cell(row.median_minutes, true), cell(row.p90_minutes, true)])));
    const rows = data.items.map((row) => ({
      label: `${row.modality} ${row.month} ${row.interval.replace("exam_to_", "")}`,
      value: row.median_minutes }));
    barChart(byId("turnaround-chart"), "turnaround-svg", "Median minutes from the exam", rows,
             Math.max(1, ...rows.map((row) => row.value)), (value) => `${value} min`);
  }

  async function load() {
    const workspace = byId("workspace");
    workspace.dataset.state = "loading";
    try {
      await Promise.all([loadCompliance(), loadCritical(), loadTurnaround()]);
      workspace.dataset.state = "ready";
    } catch (error) {
      byId("error").hidden = false;
      byId("error").textContent = error.message;
      workspace.dataset.state = "error";
    }
  }

  byId("group").addEventListener("change", load);
  load();
})();
