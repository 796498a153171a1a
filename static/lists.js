// The scan list's live first page: new matching scans arrive as rendered rows
// over server-sent events and go on top. Deeper pages have no stream, so
// they never move under the reader. Reconnects after every htmx swap, since
// the filter (and so the stream's address) may have changed.
"use strict";

(function () {
  let source = null;
  let address = "";

  function connect() {
    const table = document.getElementById("list-table");
    const wanted = table ? table.dataset.live || "" : "";
    if (wanted === address && source) return;
    if (source) source.close();
    source = null;
    address = wanted;
    if (!wanted) return;
    source = new EventSource(wanted);
    source.addEventListener("rows", (event) => {
      const body = document.querySelector("#list-table tbody");
      if (!body) return;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      body.insertAdjacentHTML("afterbegin", event.data);
    });
  }

  connect();
  document.body.addEventListener("htmx:afterSettle", connect);
})();
