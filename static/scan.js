// The scan station page: scanner-friendly keys, codes routed to the field they
// belong to, auto-submit, a pending queue that survives failures and reloads,
// the last results, the re-scan marker and the operator's counter, and the
// live table.
//
// Every scan goes through a queue kept in localStorage and is sent, in order,
// with its own submission id until the server answers. A retry of a scan that
// did reach the server is harmless: the server saves each submission id once.
//
// The page itself is kept on the terminal by a service worker (static/sw.js):
// while the app cannot be reached, the page still loads and says it is
// offline; before sending again, it asks the app whose session this is and its
// current CSRF token.
"use strict";

(function () {
  const page = document.querySelector(".scan-page");
  if (!page) return;

  // Every text this script shows, translated by the page (templates/stations/page.html);
  // `%(name)s` in a text is filled by `fill`.
  const MESSAGES = JSON.parse(document.getElementById("scan-messages").textContent);
  const fill = (text, values) => text.replace(/%\((\w+)\)s/g, (_match, name) => values[name]);

  const FIELDS = ["operator_code", "piece_code", "checker1_code", "checker2_code", "defect_code"];
  const station = page.dataset.station;
  // Pending scans belong to the user who made them: on a shared terminal the
  // next user's session never sends them. A page drawn while the database was
  // unreachable does not know its user; it goes on with this tab's last one.
  const userKey = "quality.user";
  if (page.dataset.user) sessionStorage.setItem(userKey, page.dataset.user);
  const user = page.dataset.user || sessionStorage.getItem(userKey) || "";
  const queueKey = "quality.pending." + user + "." + station;
  const operatorKey = "quality.operator." + user + "." + station;
  const REQUEST_TIMEOUT_MS = 8000;
  const MAX_RETRY_MS = 5000;
  const SHOW_PENDING_AFTER_MS = 800;
  // A wedge scanner types a code at a few milliseconds per key, a person at
  // 100 ms or more. Keys outside the form are a scan when the middle gap
  // between them is at most this; a loaded machine stalls now and then for a
  // key or two, which the middle gap ignores (see bench/scanner_keys.py).
  const SCANNER_KEY_GAP_MS = 50;
  // A longer pause starts a new run of keys.
  const KEY_PAUSE_MS = 500;

  const APP_RETRY_MS = 3000;

  let sending = false;
  let retryTimer = null;
  let retryDelay = 1000;
  let lastProblem = "";
  let signInNeeded = false;
  // A scanner sends Enter right after the defect code that already submitted
  // the form; that Enter belongs to the scan just sent, not to the next one.
  let swallowEnterUntil = 0;

  const form = () => document.getElementById("scan-form");
  const input = (name) => form().elements[name];
  const csrfToken = () => JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];

  // A token from the app, for this script's requests and the page's forms.
  function setCsrfToken(token) {
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRF-Token": token }));
    document.querySelectorAll("input[name=csrf_token]").forEach((field) => { field.value = token; });
  }

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
  //
  // Nothing is judged while a code is being typed. On Enter the code goes to
  // the field whose format it has (a badge scanned into the wrong field moves
  // to its own); a code no field takes stays where it is, marked and selected
  // so the next scan replaces it. The form is sent once every field holds a
  // valid code, whatever the order they came in.

  const patterns = Object.fromEntries(
    FIELDS.map((name) => [name, new RegExp("^(?:" + input(name).dataset.pattern + ")$")]),
  );
  const fields = () => FIELDS.map(input);
  const normalise = (value) => value.trim().toUpperCase();
  const fits = (field, code) => patterns[field.name].test(code);
  const holdsCode = (field) => fits(field, normalise(field.value));
  const firstOpen = () => fields().find((field) => !holdsCode(field));
  const isScanField = (element) =>
    element instanceof HTMLInputElement && FIELDS.includes(element.name) && form().contains(element);

  // Focus comes with the content selected: the next scan replaces what is there.
  function focusField(field) {
    field.focus();
    field.select();
  }

  function focusFirstOpen() {
    focusField(firstOpen() || input("piece_code"));
  }

  function markField(field, message) {
    unmarkField(field);
    const note = document.createElement("small");
    note.className = "field-error";
    note.id = field.name + "-error";
    note.dataset.testid = field.name + "-error";
    note.textContent = message;
    field.closest("label").classList.add("invalid");
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", note.id);
    field.after(note);
  }

  function unmarkField(field) {
    field.closest("label").classList.remove("invalid");
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
    const note = document.getElementById(field.name + "-error");
    if (note) note.remove();
  }

  function describe(field) {
    return fill(MESSAGES.noField, {
      label: field.closest("label").querySelector("span").textContent,
      example: field.placeholder,
    });
  }

  // The field a completed code belongs in: one already holding it (a badge
  // scanned twice), else the field it was typed into if it fits there, else
  // the field its format names — the first open one where fields share a
  // format (the checkers), the only one otherwise (a new operator badge
  // replaces the old). A string says why no field takes it.
  function destination(field, code) {
    const candidates = fields().filter((candidate) => fits(candidate, code));
    if (!candidates.length) return describe(field);
    const holder = candidates.find((candidate) => candidate !== field && normalise(candidate.value) === code);
    if (holder) return holder;
    if (candidates.includes(field)) return field;
    const open = candidates.find((candidate) => !holdsCode(candidate));
    if (open) return open;
    return candidates.length === 1 ? candidates[0] : MESSAGES.noRoom;
  }

  // A completed code in `field`: put it where it belongs, then send the scan
  // if it is whole, or wait for the next code in the first open field.
  function placeCode(field) {
    const code = normalise(field.value);
    field.value = code;
    const target = destination(field, code);
    if (typeof target === "string") {
      markField(field, target);
      focusField(field);
      showRefused();
      feedback("invalid");
      return;
    }
    if (target !== field) {
      target.value = code;
      field.value = "";
      unmarkField(field);
    }
    unmarkField(target);
    if (fields().every(holdsCode)) submitScan();
    else focusFirstOpen();
    checkPiece();
    checkOperator();
  }

  // Keys typed while the focus is outside the form: a run of keys ending in
  // Enter, typed at scanner speed, is a scan; anything slower is a person's,
  // left alone.
  const run = { text: "", times: [] };

  function startRun() {
    run.text = "";
    run.times = [];
  }

  function middleGap(times) {
    const gaps = times.slice(1).map((time, index) => time - times[index]).sort((a, b) => a - b);
    return gaps[Math.floor((gaps.length - 1) / 2)];
  }

  function keyOutsideForm(event) {
    const printable = event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey;
    if (!printable && event.key !== "Enter") return;
    if (run.times.length && event.timeStamp - run.times.at(-1) > KEY_PAUSE_MS) startRun();
    run.times.push(event.timeStamp);
    if (printable) {
      run.text += event.key;
      return;
    }
    const code = run.text;
    const scanned = code.length >= 2 && middleGap(run.times) <= SCANNER_KEY_GAP_MS;
    startRun();
    if (!scanned) return;
    event.preventDefault();
    const field = firstOpen() || input("piece_code");
    field.value = code;
    placeCode(field);
  }

  function keyInField(event) {
    const field = event.target;
    startRun();
    const swallow = Date.now() < swallowEnterUntil;
    swallowEnterUntil = 0;
    if (event.key !== "Enter") return;
    event.preventDefault();
    // An empty field keeps the focus, so Enter never skips a field.
    if (swallow || !field.value.trim()) return;
    placeCode(field);
  }

  document.addEventListener("keydown", (event) => {
    if (!form()) return;
    if (isScanField(event.target)) keyInField(event);
    else keyOutsideForm(event);
  });

  document.addEventListener("input", (event) => {
    const field = event.target;
    if (!form() || !isScanField(field)) return;
    // The mark was about what was there before; so was a re-scan marker.
    unmarkField(field);
    if (field.name === "piece_code") checkPiece({ ask: false });
    // A complete defect code sends a whole scan at once, without Enter.
    if (field.name === "defect_code" && fields().every(holdsCode)) {
      swallowEnterUntil = Date.now() + 300;
      submitScan();
    }
  });

  document.addEventListener("submit", (event) => {
    if (event.target.matches("form.signout")) {
      signingOut(event);
      return;
    }
    if (event.target.id !== "scan-form") return;
    event.preventDefault();
    submitScan();
  });

  // Signing out with scans still pending: say so; they stay queued for this user.
  function signingOut(event) {
    const pending = loadQueue().length;
    if (pending && !window.confirm(fill(MESSAGES.signOutPending, { count: pending }))) {
      event.preventDefault();
      return;
    }
    sessionStorage.removeItem(userKey);
  }

  function submitScan() {
    const values = {};
    for (const name of FIELDS) values[name] = normalise(input(name).value);
    const item = { id: input("submission_id").value, values, queuedAt: Date.now(), tries: 0 };
    input("submission_id").value = newSubmissionId();
    storeQueue([...loadQueue().filter((queued) => queued.id !== item.id), item]);
    sessionStorage.setItem(operatorKey, values.operator_code);
    // Ready for the next piece at once; the operator code stays.
    for (const name of FIELDS.slice(1)) input(name).value = "";
    input("operator_code").value = values.operator_code;
    fields().forEach(unmarkField);
    input("piece_code").focus();
    checkPiece();
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
    // After the app was unreachable (or the page came from the terminal's
    // cache), first its session and token; sent as the app answers.
    const check = appChecked ? "checked" : await checkApp();
    let verdict = "retry";
    if (["checked", "answered"].includes(check)) verdict = await send(item);
    else if (check === "unreachable") feedback("pending");
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
      lastProblem = navigator.onLine === false ? MESSAGES.noNetwork : MESSAGES.noAnswer;
      signInNeeded = false;
      appChecked = false;
      showOffline(true);
      feedback("pending");
      return "retry";
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) {
      removeFromQueue(item.id);
      keepAsPrevious();
      htmx.swap("#scan-result", html, { swapStyle: "outerHTML" });
      feedback(document.getElementById("scan-result").dataset.outcome);
      checkOperator();
      return "done";
    }
    if ([400, 409, 422].includes(response.status)) {
      // The server refused this scan as typed: show it for correction, don't retry.
      removeFromQueue(item.id);
      keepAsPrevious();
      htmx.swap("#scan-result", html, { swapStyle: "outerHTML" });
      const invalid = form().querySelector("[aria-invalid=true]");
      if (invalid) focusField(invalid);
      feedback("invalid");
      checkPiece();
      checkOperator();
      return "done";
    }
    signInNeeded = response.status === 401 || response.status === 403;
    if (response.status === 401) lastProblem = MESSAGES.sessionEnded;
    else if (response.status === 403) lastProblem = MESSAGES.notAllowed;
    else lastProblem = fill(MESSAGES.busy, { status: response.status });
    if (signInNeeded) showSignIn();
    feedback("pending");
    return "retry";
  }

  function showSignIn() {
    const note = document.querySelector("#pending .pending-note");
    note.textContent = "";
    note.append(MESSAGES.signInBefore);
    const link = document.createElement("a");
    link.href = "/login?next=" + encodeURIComponent(location.pathname);
    link.textContent = MESSAGES.signInLink;
    note.append(link, MESSAGES.signInAfter);
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
          item.values.piece_code + " · " + item.values.defect_code + " — " + MESSAGES.pending +
          (lastProblem ? " (" + lastProblem + ")" : "");
        return entry;
      }),
    );
    if (!signInNeeded) {
      section.querySelector(".pending-note").textContent = visible.length ? MESSAGES.pendingNote : "";
    }
    // Once scans are pending, one queued behind them shows when due too, not at
    // the next retry (up to MAX_RETRY_MS away).
    if (queue.length > visible.length && (visible.length || !sending)) {
      setTimeout(renderPending, SHOW_PENDING_AFTER_MS);
    }
  }

  // -- the last results --------------------------------------------------------------
  //
  // The server's answer replaces the big last result; the one it replaces, if it
  // was a saved scan, moves into the short list of previous results below.

  const HISTORY_SIZE = 3;

  function keepAsPrevious() {
    const current = document.getElementById("scan-result");
    if (!["approved", "rejected"].includes(current.dataset.outcome)) return;
    const copy = current.cloneNode(true);
    for (const name of ["id", "role", "aria-live"]) copy.removeAttribute(name);
    copy.querySelectorAll("[data-testid]").forEach((element) => element.removeAttribute("data-testid"));
    copy.dataset.testid = "previous-result";
    const entry = document.createElement("li");
    entry.append(copy);
    const list = document.querySelector("#scan-history .history-list");
    list.prepend(entry);
    while (list.children.length > HISTORY_SIZE) list.lastElementChild.remove();
    document.getElementById("scan-history").hidden = false;
  }

  // A code the page itself refused: the big panel says so, as it does for the
  // server's refusals, rather than still showing the previous scan's verdict.
  function showRefused() {
    keepAsPrevious();
    const result = document.getElementById("scan-result");
    result.className = "scan-result invalid";
    result.dataset.outcome = "invalid";
    const verdict = document.createElement("p");
    verdict.className = "verdict";
    verdict.textContent = MESSAGES.notSaved;
    result.replaceChildren(verdict);
  }

  // -- asked on the side: the piece's last verdict, the operator's count ------------
  //
  // Small GETs that never hold up the scan: nothing waits for them, an answer
  // about a code the form no longer holds is dropped, and a failed one
  // (offline, 503, session ended) just shows nothing.

  const LOOKUP_TIMEOUT_MS = 3000;
  const lookups = {};

  // The fragment the server answers for `code`, or null. A newer question of the
  // same kind cancels the older one.
  async function ask(kind, code) {
    if (lookups[kind]) lookups[kind].abort();
    const controller = new AbortController();
    lookups[kind] = controller;
    const timer = setTimeout(() => controller.abort(), LOOKUP_TIMEOUT_MS);
    try {
      const response = await fetch(page.dataset[kind] + "?code=" + encodeURIComponent(code), {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
        signal: controller.signal,
      });
      const html = await response.text();
      return response.ok && lookups[kind] === controller ? html : null;
    } catch (error) {
      return null;
    } finally {
      clearTimeout(timer);
      if (lookups[kind] === controller) delete lookups[kind];
    }
  }

  // The re-scan marker shows the verdict of the piece code the form holds, and
  // nothing for any other code. Its data-piece is the code it answers for
  // (also when the answer is "never scanned here", hidden).
  let pieceAsking = "";

  function checkPiece({ ask: asking = true } = {}) {
    const field = input("piece_code");
    const code = normalise(field.value);
    const notice = document.getElementById("rescan-notice");
    if (notice.dataset.piece !== code) {
      notice.hidden = true;
      notice.textContent = "";
      notice.dataset.piece = "";
    }
    if (!asking || !holdsCode(field) || notice.dataset.piece === code || pieceAsking === code) return;
    pieceAsking = code;
    ask("piece", code).then((html) => {
      if (pieceAsking === code) pieceAsking = "";
      if (html !== null && normalise(input("piece_code").value) === code) {
        htmx.swap("#rescan-notice", html, { swapStyle: "outerHTML" });
      }
    });
  }

  // The counter beside the operator field counts the code the field holds; a
  // save's answer brings it up to date, a new badge asks, and so does the end of
  // the shift it counts.
  let counterTimer = null;
  let operatorAsking = "";

  function checkOperator() {
    const field = input("operator_code");
    const code = normalise(field.value);
    const counter = document.getElementById("operator-count");
    clearTimeout(counterTimer);
    if (counter.dataset.operator && counter.dataset.operator === code) {
      if (lookups.operator) lookups.operator.abort(); // its answer would be older than this one
      const shiftEnds = Number(counter.dataset.until);
      if (shiftEnds) counterTimer = setTimeout(recount, Math.max(shiftEnds + 1000 - Date.now(), 1000));
      return;
    }
    counter.textContent = "";
    counter.dataset.operator = "";
    if (!holdsCode(field) || operatorAsking === code) return;
    operatorAsking = code;
    ask("operator", code).then((html) => {
      if (operatorAsking === code) operatorAsking = "";
      if (html !== null && normalise(input("operator_code").value) === code) {
        htmx.swap("#operator-count", html, { swapStyle: "outerHTML" });
        checkOperator();
      }
    });
  }

  function recount() {
    document.getElementById("operator-count").dataset.operator = "";
    checkOperator();
  }

  // -- the app's own outage ----------------------------------------------------------
  //
  // The service worker answers this page from the terminal's cache when the app
  // cannot be reached. Whether it was, and whether the page is still this
  // session's, the page learns by asking the app; until it answers the page says
  // it is offline, and scans wait in the outbox.

  let appChecked = false;
  let appTimer = null;
  const reloadedKey = "quality.reloadedFor";

  // "checked": the app answered and this page is its session's, with the
  // session's token now; "answered": it answered otherwise (signed out, not
  // allowed, database busy: the send says so); "unreachable"; "reloading".
  async function checkApp() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), LOOKUP_TIMEOUT_MS);
    let response;
    let answer = null;
    try {
      response = await fetch(page.dataset.session, {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
      // A proxy's answer for an app that is not there: as unreachable.
      if ([502, 504].includes(response.status)) throw new Error("gateway " + response.status);
      if (response.ok) answer = await response.json();
    } catch (error) {
      lastProblem = navigator.onLine === false ? MESSAGES.noNetwork : MESSAGES.noAnswer;
      showOffline(true);
      whenBack();
      return "unreachable";
    } finally {
      clearTimeout(timer);
    }
    showOffline(false);
    if (!answer) return "answered";
    // Another user's page, or an older deployment's script: the app's page
    // instead (the outbox stays, per user). A rolling upgrade may serve both
    // versions for a while: one reload per version, not one per answer.
    const otherUser = page.dataset.user && String(answer.user) !== page.dataset.user;
    const newAssets = answer.assets !== page.dataset.assets &&
      sessionStorage.getItem(reloadedKey) !== answer.assets;
    if (otherUser || newAssets) {
      sessionStorage.setItem(reloadedKey, answer.assets);
      location.reload();
      return "reloading";
    }
    setCsrfToken(answer.csrf);
    appChecked = true;
    keepForOffline();
    return "checked";
  }

  function showOffline(offline) {
    const note = document.getElementById("offline-note");
    note.textContent = offline ? MESSAGES.offline : "";
    note.hidden = !offline;
    page.toggleAttribute("data-offline", offline);
  }

  // Asks again a little later; the outbox, if it holds scans, asks as it sends.
  function whenBack() {
    clearTimeout(appTimer);
    appTimer = setTimeout(() => {
      if (loadQueue().length) pump();
      else if (!appChecked) checkApp();
    }, APP_RETRY_MS);
  }

  // The worker keeps this page and its static files; a new deployment's page
  // registers a new worker, which replaces the old one's copies. The list goes
  // to the worker registered for this page's deployment, once it is running.
  async function keepForOffline() {
    if (!("serviceWorker" in navigator)) return;
    let worker;
    try {
      const registration = await navigator.serviceWorker.register(page.dataset.worker, { scope: "/" });
      worker = registration.installing || registration.waiting || registration.active;
    } catch (error) {
      return; // unreachable again, or not allowed here: asked again at the next check
    }
    if (!worker) return;
    if (worker.state !== "activated") {
      await new Promise((resolve) => {
        worker.addEventListener("statechange", () => {
          if (["activated", "redundant"].includes(worker.state)) resolve();
        });
      });
    }
    const used = document.querySelectorAll("script[src], link[href][rel~=stylesheet], link[href][rel~=icon]");
    const files = Array.from(used, (element) => element.getAttribute("src") || element.getAttribute("href"));
    if (worker.state === "activated") worker.postMessage({ keep: [location.pathname, ...files] });
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
      // The app may be restarting, or being replaced by a new deployment:
      // ask it again when back, even with nothing to send.
      appChecked = false;
      whenBack();
    });
  }

  // -- start -------------------------------------------------------------------------

  // This page may be a copy the terminal kept, whose id was used already.
  input("submission_id").value = newSubmissionId();
  const rememberedOperator = sessionStorage.getItem(operatorKey);
  if (rememberedOperator && !input("operator_code").value) input("operator_code").value = rememberedOperator;
  focusFirstOpen();
  checkPiece();
  checkOperator();
  window.addEventListener("online", () => {
    retryDelay = 1000;
    pump();
  });
  connectTable();
  checkApp().then(pump);
})();
