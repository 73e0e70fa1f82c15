// What the annotation, adjudication and audit pages share, as window.radnlp: each page loads
// this before its own script. Plain DOM only; text is always set as text, never as HTML.
"use strict";

window.radnlp = (() => {
  const NAME = /^[\w.@-]+$/;
  const JSON_HEADERS = { Accept: "application/json", "Content-Type": "application/json" };

  const byId = (id) => document.getElementById(id);
  const clone = (value) => JSON.parse(JSON.stringify(value));
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const twoDecimals = (value) => (value === null || value === undefined
    ? "–" : Number(value).toFixed(2));

  // An element with attributes ("text" sets its text) and children; null attributes are left out.
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // --- Server ----------------------------------------------------------------------------

  // The JSON answer; a refusal throws an Error with message(response, detail), detail being the
  // answer's "detail" (undefined when the answer is not JSON or has none).
  async function fetchJSON(url, options, message) {
    const response = await fetch(url, options);
    if (!response.ok) {
      let detail;
      try {
        detail = (await response.json()).detail;
      } catch (_) { /* not JSON: no detail */ }
      throw new Error(message(response, detail));
    }
    return response.json();
  }

  // A JSON API call; a refusal's message is the API's detail, else the status line.
  function request(url, options = {}) {
    return fetchJSON(url, { headers: JSON_HEADERS, ...options }, (response, detail) => {
      if (!detail) return `${response.status} ${response.statusText}`;
      return typeof detail === "string" ? detail : JSON.stringify(detail);
    });
  }

  // Puts name=value in the address without a new history entry.
  function replaceParam(name, value) {
    const url = new URL(window.location.href);
    url.searchParams.set(name, value);
    window.history.replaceState(null, "", url);
  }

  // --- Status, messages, help ------------------------------------------------------------

  // A setter of the status line (#save-status) to one of texts (state -> text), with a detail.
  function statusLine(texts) {
    return (state, detail) => {
      const line = byId("save-status");
      line.dataset.state = state;
      line.textContent = detail ? `${texts[state]}: ${detail}` : texts[state];
    };
  }

  function say(text) {
    byId("message").textContent = text;
  }

  function showError(text) {
    const box = byId("error");
    box.textContent = text;
    box.hidden = !text;
  }

  // Shows (true), hides (false) or flips (nothing) the shortcuts panel.
  function toggleHelp(show) {
    const help = byId("help");
    help.hidden = show === undefined ? !help.hidden : !show;
    byId("help-toggle").setAttribute("aria-expanded", String(!help.hidden));
  }

  // Key presses go to onKey; the help button flips the shortcuts panel.
  function bindShortcuts(onKey) {
    document.addEventListener("keydown", onKey);
    byId("help-toggle").addEventListener("click", () => toggleHelp());
  }

  // --- Sign-in and the queue -------------------------------------------------------------

  // With a valid name (from ?param=), shows it and the workspace and returns true. Without, the
  // sign-in form (#param-form) asks for one and reloads with ?param=NAME, less the drop params.
  function signIn(param, name, { drop = [] } = {}) {
    if (name && NAME.test(name)) {
      byId("who").hidden = false;
      byId(`${param}-name`).textContent = name;
      byId("workspace").hidden = false;
      return true;
    }
    const input = byId(`${param}-input`);
    byId("sign-in").hidden = false;
    byId(`${param}-form`).addEventListener("submit", (event) => {
      event.preventDefault();
      const typed = input.value.trim();
      if (!NAME.test(typed)) {
        input.setCustomValidity("Letters, digits and ._-@ only.");
        input.reportValidity();
        return;
      }
      const url = new URL(window.location.href);
      url.searchParams.set(param, typed);
      for (const key of drop) url.searchParams.delete(key);
      window.location.assign(url);
    });
    input.addEventListener("input", () => input.setCustomValidity(""));
    input.focus();
    return false;
  }

  // The queue (#queue): a button per task that opens it, marked when it is the open one;
  // entry(item, index) gives its title, its meta line and any more children.
  function fillQueue(queue, openId, entry, open) {
    byId("queue").replaceChildren(...queue.map((item, index) => {
      const [title, meta, ...more] = entry(item, index);
      const button = el("button", { type: "button", class: "queue-item",
                                    "data-task-id": String(item.id),
                                    "aria-current": item.id === openId ? "true" : null }, [
        el("span", { class: "queue-title", text: title }),
        el("span", { class: "queue-meta", text: meta }), ...more]);
      button.addEventListener("click", () => open(item.id));
      return el("li", {}, [button]);
    }));
    byId("queue-count").textContent = `(${queue.length})`;
    byId("queue-empty").hidden = queue.length > 0;
  }

  // --- Report text -----------------------------------------------------------------------

  // The pieces [start, end) of a text of this length cut at every item's start and end.
  function pieces(length, items) {
    const cuts = new Set([0, length]);
    for (const item of items) {
      cuts.add(item.start);
      cuts.add(item.end);
    }
    const points = [...cuts].sort((a, b) => a - b);
    return points.slice(1).map((end, i) => [points[i], end]);
  }

  return Object.freeze({
    byId, clone, plural, twoDecimals, el, fetchJSON, request, replaceParam, statusLine, say,
    showError, toggleHelp, bindShortcuts, signIn, fillQueue, pieces,
  });
})();
