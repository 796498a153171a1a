// The scan list and the reports.
// - The list's live first page: new matching scans arrive as rendered rows over
//   server-sent events and go on top. Deeper pages have no stream, so they never
//   move under the reader. Reconnects after every htmx swap, since the filter
//   (and so the stream's address) may have changed, and after a refused one.
// - Figures that refresh themselves (a list's totals, an open report) keep what
//   they show when a refresh fails, and go on asking.
// - The list's filter form is never replaced: a pause in typing, or a changed
//   field, asks for the results alone (the form's "filter" trigger), once per
//   distinct filter; errors come back beside their fields, out of band.
"use strict";

(function () {
  const TYPING_PAUSE_MS = 500;
  // How long a refused stream, or a failed refresh of the totals, waits to ask again.
  const AGAIN_AFTER_MS = 5000;
  let source = null;
  let address = "";
  let newestRow = "";  // the newest row the stream brought: where a stream opened again resumes

  function connect() {
    const table = document.getElementById("list-table");
    const wanted = table ? table.dataset.live || "" : "";
    if (wanted === address && source) return;
    if (source) source.close();
    source = null;
    address = wanted;
    newestRow = "";
    if (wanted) open(wanted);
  }

  function open(url) {
    const opened = new EventSource(url);
    source = opened;
    opened.addEventListener("rows", (event) => {
      const body = document.querySelector("#list-table tbody");
      if (!body) return;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      body.insertAdjacentHTML("afterbegin", event.data);
      newestRow = event.lastEventId;
      recount(event.lastEventId);
    });
    // EventSource reconnects by itself, unless an answer was not a stream (a
    // 503 while the database is away): then it would never ask again. Opened
    // again a little later, after the newest row shown, unless the filter changed meanwhile.
    opened.addEventListener("error", () => {
      if (opened.readyState !== EventSource.CLOSED) return;
      setTimeout(() => { if (source === opened) open(resumed()); }, AGAIN_AFTER_MS);
    });
  }

  function resumed() {
    const url = new URL(address, location.href);
    if (newestRow) url.searchParams.set("v", newestRow);
    return url.pathname + url.search;
  }

  // The totals follow the rows: asked again a moment after new matching scans
  // (whatever comes meanwhile joins that one question, so a busy line still
  // gets its totals every second), naming the newest, so the server can answer
  // every page open on this filter with one reading. A failed question is asked again.
  const RECOUNT_AFTER_MS = 1000;
  let recounting = null;
  let newestSeen = "";
  function recount(newest, delay = RECOUNT_AFTER_MS) {
    newestSeen = newest;
    if (recounting) return;
    recounting = setTimeout(() => {
      recounting = null;
      const tools = document.querySelector("[data-totals]");
      if (!tools || !document.getElementById("totals")) return;
      htmx.ajax("GET", `${tools.dataset.totals}&v=${encodeURIComponent(newestSeen)}`,
                { target: "#totals", swap: "outerHTML" });
    }, delay);
  }

  // -- a refresh that fails ----------------------------------------------------------
  // Figures that refresh themselves name their note (data-refresh-note). A
  // refresh the server fails (5xx: the database away, a proxy without the app)
  // or that gets no answer keeps the figures shown, in place: an error page
  // swapped in would take the element that asks again with it, and the page
  // would stop following the floor. The note says since when the figures are
  // not refreshed; the next good answer (new figures, or a 304: still current)
  // hides it. A 4xx is still shown: asking again would not cure it.
  const loadedAt = new Date();
  const confirmedAt = new Map();  // note id -> when its figures were last confirmed

  function noteFor(target) {
    const id = target && target.dataset ? target.dataset.refreshNote : "";
    return id ? document.getElementById(id) : null;
  }

  function notRefreshed(target, note) {
    const since = confirmedAt.get(note.id) || loadedAt;
    const time = note.querySelector("time");
    time.dateTime = since.toISOString();
    time.textContent = new Intl.DateTimeFormat(document.documentElement.lang, {
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: note.dataset.zone,
    }).format(since);
    note.hidden = false;
    if (target.id === "totals") recount(newestSeen, AGAIN_AFTER_MS);
  }

  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const note = noteFor(event.detail.target);
    if (!note || event.detail.xhr.status < 500) return;
    event.detail.shouldSwap = false;
    notRefreshed(event.detail.target, note);
  });
  document.body.addEventListener("htmx:sendError", (event) => {
    const note = noteFor(event.detail.target);
    if (note) notRefreshed(event.detail.target, note);
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const note = noteFor(event.detail.target);
    if (!note || !event.detail.successful) return;
    confirmedAt.set(note.id, new Date());
    note.hidden = true;
  });

  function filterQuery(form) {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) params.append(name, value);
    return params.toString();
  }

  // Listened to on the body: a back/forward brings a new form, which is watched the same way.
  const sentFor = new WeakMap();  // form -> the filter last asked for
  const pauses = new WeakMap();

  function remember() {
    for (const form of document.querySelectorAll("form[data-live-filter]")) {
      if (!sentFor.has(form)) sentFor.set(form, filterQuery(form));
    }
  }

  function ask(form) {
    clearTimeout(pauses.get(form));
    const query = filterQuery(form);
    if (query === sentFor.get(form)) return;
    sentFor.set(form, query);
    htmx.trigger(form, "filter");
  }

  function watchFilters() {
    document.body.addEventListener("input", (event) => {
      const form = event.target.closest("form[data-live-filter]");
      if (!form || event.target.type !== "text") return;
      clearTimeout(pauses.get(form));
      pauses.set(form, setTimeout(() => ask(form), TYPING_PAUSE_MS));
    });
    document.body.addEventListener("change", (event) => {
      const form = event.target.closest("form[data-live-filter]");
      if (form) ask(form);
    });
    document.body.addEventListener("submit", (event) => {
      const form = event.target.closest("form[data-live-filter]");
      if (!form) return;
      clearTimeout(pauses.get(form));
      sentFor.set(form, filterQuery(form));
    });
  }

  // A range preset and typed dates exclude each other: choosing one empties the other.
  // The calendar beside a date field writes its choice the way the page's language types it.
  function pickerValue(text) {
    const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2}))?/.exec(text);
    const dotted = /^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[T ](\d{1,2}):(\d{2}))?/.exec(text);
    const two = (part) => String(part).padStart(2, "0");
    if (iso) return `${iso[1]}-${iso[2]}-${iso[3]}T${two(iso[4] || 0)}:${iso[5] || "00"}`;
    if (dotted) return `${dotted[3]}-${two(dotted[2])}-${two(dotted[1])}T${two(dotted[4] || 0)}:${dotted[5] || "00"}`;
    return "";
  }

  function typedValue(picked, order) {
    const [day, clock] = picked.split("T");
    const [year, month, date] = day.split("-");
    return (order === "dmy" ? `${date}.${month}.${year}` : day) + (clock ? ` ${clock.slice(0, 5)}` : "");
  }

  function watchRanges() {
    document.body.addEventListener("input", (event) => {
      const form = event.target.closest("form.filters");
      if (!form || !["from", "to"].includes(event.target.name)) return;
      form.elements.range.value = "";
    });
    document.body.addEventListener("focusin", (event) => {
      if (!event.target.matches("form.filters .date-picker")) return;
      event.target.value = pickerValue(event.target.form.elements[event.target.dataset.for].value);
    });
    document.body.addEventListener("change", (event) => {
      const form = event.target.closest("form.filters");
      if (!form) return;
      if (event.target.matches(".date-picker")) {
        event.stopPropagation();
        if (!event.target.value) return;
        const field = form.elements[event.target.dataset.for];
        field.value = typedValue(event.target.value, form.dataset.dateOrder);
        form.elements.range.value = "";
        field.dispatchEvent(new Event("change", { bubbles: true }));
      } else if (event.target.name === "range" && event.target.value) {
        form.elements.from.value = "";
        form.elements.to.value = "";
        if (!form.hasAttribute("data-live-filter")) form.requestSubmit();
      }
    }, true);
  }

  // A field's error (filled or emptied out of band) marks the field too.
  function markFields() {
    for (const note of document.querySelectorAll("form.filters .field-error")) {
      const label = note.closest("label");
      const field = label && label.querySelector("input, select");
      if (!field) continue;
      const wrong = !note.hidden;
      label.classList.toggle("invalid", wrong);
      if (wrong) field.setAttribute("aria-invalid", "true");
      else field.removeAttribute("aria-invalid");
    }
  }

  // The header's language form sends the person back to the address they now see.
  function keepAddressForLanguage() {
    const next = document.querySelector("form.language input[name=next]");
    if (next) next.value = location.pathname + location.search;
  }

  // A report refreshing itself says which version it shows: the server answers 304 when it is current.
  document.body.addEventListener("htmx:configRequest", (event) => {
    const shown = event.detail.elt.dataset ? event.detail.elt.dataset.etag : "";
    if (shown) event.detail.headers["If-None-Match"] = shown;
  });

  remember();
  watchFilters();
  watchRanges();
  connect();
  document.body.addEventListener("htmx:afterSettle", () => { remember(); connect(); });
  document.body.addEventListener("htmx:historyRestore", () => { remember(); connect(); markFields(); });
  document.body.addEventListener("htmx:oobAfterSwap", markFields);
  document.body.addEventListener("htmx:pushedIntoHistory", keepAddressForLanguage);
})();
