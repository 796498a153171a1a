// The scan station page: scanner-friendly keys, auto-submit, a pending queue
// that survives failures and reloads, and the live table.
//
// Every scan goes through a queue kept in localStorage and is sent, in order,
// with its own submission id until the server answers. A retry of a scan that
// did reach the server is harmless: the server saves each submission id once.
"use strict";

(function () {
  const page = document.querySelector(".scan-page");
  if (!page) return;

  const FIELDS = ["operator_code", "piece_code", "checker1_code", "checker2_code", "defect_code"];
  const station = page.dataset.station;
  const queueKey = "quality.pending." + station;
  const operatorKey = "quality.operator." + station;
  const defectComplete = new RegExp("^(?:" + page.dataset.defectPattern + ")$");
  const REQUEST_TIMEOUT_MS = 8000;
  const MAX_RETRY_MS = 5000;
  const SHOW_PENDING_AFTER_MS = 800;

  let sending = false;
  let retryTimer = null;
  let retryDelay = 1000;
  let lastProblem = "";
  // A scanner sends Enter right after the defect code that already submitted
  // the form; that Enter belongs to the scan just sent, not to the next one.
  let swallowEnterUntil = 0;

  const form = () => document.getElementById("scan-form");
  const input = (name) => form().elements[name];
  const csrfToken = () => JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];

  function newSubmissionId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function loadQueue() {
    try {
      return JSON.parse(localStorage.getItem(queueKey)) || [];
    } catch (error) {
      return [];
    }
  }

  function storeQueue(queue) {
    localStorage.setItem(queueKey, JSON.stringify(queue));
  }

  function removeFromQueue(id) {
    storeQueue(loadQueue().filter((item) => item.id !== id));
  }

  // -- the keyboard: a wedge scanner types each code and presses Enter --------

  function focusFirstEmpty() {
    const empty = FIELDS.map(input).find((field) => !field.value.trim());
    (empty || input("piece_code")).focus();
  }

  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (!form() || !form().contains(field) || field.tagName !== "INPUT") return;
    const swallow = Date.now() < swallowEnterUntil;
    swallowEnterUntil = 0;
    if (event.key !== "Enter") return;
    event.preventDefault();
    // An empty field keeps the focus, so Enter never skips a field.
    if (swallow || !field.value.trim()) return;
    if (field.name === "defect_code") {
      submitScan();
      return;
    }
    const next = FIELDS[FIELDS.indexOf(field.name) + 1];
    if (next) input(next).focus();
  });

  document.addEventListener("input", (event) => {
    const field = event.target;
    if (field.name === "defect_code" && form().contains(field) && defectComplete.test(field.value.trim())) {
      swallowEnterUntil = Date.now() + 300;
      submitScan();
    }
  });

  document.addEventListener("submit", (event) => {
    if (event.target.id !== "scan-form") return;
    event.preventDefault();
    submitScan();
  });

  function submitScan() {
    const values = {};
    for (const name of FIELDS) values[name] = input(name).value.trim().toUpperCase();
    const item = { id: input("submission_id").value, values, queuedAt: Date.now(), tries: 0 };
    input("submission_id").value = newSubmissionId();
    storeQueue([...loadQueue().filter((queued) => queued.id !== item.id), item]);
    sessionStorage.setItem(operatorKey, values.operator_code);
    // Ready for the next piece at once; the operator code stays.
    for (const name of FIELDS.slice(1)) input(name).value = "";
    input("operator_code").value = values.operator_code;
    input("piece_code").focus();
    pump();
  }

  // -- sending, in order, until each scan is answered ---------------------------

  async function pump() {
    if (sending) return;
    const queue = loadQueue();
    renderPending();
    if (!queue.length) return;
    sending = true;
    clearTimeout(retryTimer);
    const item = queue[0];
    const verdict = await send(item);
    sending = false;
    if (verdict === "done") {
      retryDelay = 1000;
      pump();
    } else {
      item.tries += 1;
      const stored = loadQueue();
      const kept = stored.find((queued) => queued.id === item.id);
      if (kept) {
        kept.tries = item.tries;
        storeQueue(stored);
      }
      renderPending();
      retryTimer = setTimeout(pump, retryDelay);
      retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
    }
  }

  async function send(item) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    let html;
    try {
      response = await fetch(page.dataset.post, {
        method: "POST",
        body: new URLSearchParams({ ...item.values, submission_id: item.id }),
        headers: { "HX-Request": "true", "X-CSRF-Token": csrfToken() },
        credentials: "same-origin",
        signal: controller.signal,
      });
      html = await response.text();
    } catch (error) {
      lastProblem = navigator.onLine === false ? "no network" : "no answer from the server";
      feedback("pending");
      return "retry";
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) {
      removeFromQueue(item.id);
      htmx.swap("#scan-result", html, { swapStyle: "outerHTML" });
      feedback(document.getElementById("scan-result").dataset.outcome);
      return "done";
    }
    if ([400, 409, 422].includes(response.status)) {
      // The server refused this scan as typed: show it for correction, don't retry.
      removeFromQueue(item.id);
      htmx.swap("#scan-result", html, { swapStyle: "outerHTML" });
      const invalid = form().querySelector("[aria-invalid=true]");
      if (invalid) invalid.focus();
      feedback("invalid");
      return "done";
    }
    if (response.status === 401) {
      lastProblem = "session ended";
      showSignIn();
    } else if (response.status === 403) {
      lastProblem = "not allowed — sign in again";
      showSignIn();
    } else {
      lastProblem = "server busy (" + response.status + ")";
    }
    feedback("pending");
    return "retry";
  }

  function showSignIn() {
    const note = document.querySelector("#pending .pending-note");
    note.textContent = "";
    note.append("Your session has ended. The scans below are kept; ");
    const link = document.createElement("a");
    link.href = "/login?next=" + encodeURIComponent(location.pathname);
    link.textContent = "sign in again";
    note.append(link, " and they will be saved.");
  }

  function renderPending() {
    const section = document.getElementById("pending");
    const queue = loadQueue();
    const now = Date.now();
    const visible = queue.filter((item) => item.tries > 0 || now - item.queuedAt > SHOW_PENDING_AFTER_MS);
    section.hidden = visible.length === 0;
    const list = section.querySelector(".pending-list");
    list.replaceChildren(
      ...visible.map((item) => {
        const entry = document.createElement("li");
        entry.dataset.submission = item.id;
        entry.textContent =
          item.values.piece_code + " · " + item.values.defect_code + " — pending, retrying" +
          (lastProblem ? " (" + lastProblem + ")" : "");
        return entry;
      }),
    );
    if (!lastProblem.startsWith("session") && !lastProblem.startsWith("not allowed")) {
      section.querySelector(".pending-note").textContent = visible.length
        ? "Not saved yet. Keep scanning: these are kept and sent again automatically."
        : "";
    }
    if (queue.length && !visible.length && !sending) {
      setTimeout(renderPending, SHOW_PENDING_AFTER_MS);
    }
  }

  // -- feedback ------------------------------------------------------------------

  const beepBox = document.getElementById("beep");
  beepBox.checked = localStorage.getItem("quality.beep") === "on";
  beepBox.addEventListener("change", () => localStorage.setItem("quality.beep", beepBox.checked ? "on" : "off"));
  let audio = null;

  function feedback(outcome) {
    page.dataset.state = outcome || "";
    if (!beepBox.checked) return;
    const tones = { approved: [880], rejected: [330, 330], invalid: [220], pending: [440, 220] }[outcome];
    if (!tones) return;
    audio = audio || new AudioContext();
    tones.forEach((frequency, index) => {
      const oscillator = audio.createOscillator();
      const start = audio.currentTime + index * 0.18;
      oscillator.frequency.value = frequency;
      oscillator.connect(audio.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.12);
    });
  }

  // -- the live table --------------------------------------------------------------

  function connectTable() {
    const table = document.getElementById("scan-table");
    const source = new EventSource(page.dataset.stream + "?v=" + (table ? table.dataset.version : ""));
    source.addEventListener("table", (event) => {
      const current = document.getElementById("scan-table");
      if (current && Number(current.dataset.version) > Number(event.lastEventId)) return;
      htmx.swap("#scan-table", event.data, { swapStyle: "outerHTML" });
    });
    source.addEventListener("error", () => {
      // EventSource reconnects by itself unless the answer was not a stream
      // (e.g. the session ended); then try again a little later.
      if (source.readyState === EventSource.CLOSED) setTimeout(connectTable, 10000);
    });
  }

  // -- start -------------------------------------------------------------------------

  const rememberedOperator = sessionStorage.getItem(operatorKey);
  if (rememberedOperator && !input("operator_code").value) input("operator_code").value = rememberedOperator;
  focusFirstEmpty();
  window.addEventListener("online", () => {
    retryDelay = 1000;
    pump();
  });
  connectTable();
  pump();
})();
