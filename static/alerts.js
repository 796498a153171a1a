// The live alert banner: the open alerts, sent whole over server-sent events
// whenever they change (quality/pages/alerts/views.py).
"use strict";

(function () {
  // How long a refused stream waits to ask again.
  const AGAIN_AFTER_MS = 5000;
  const banner = document.getElementById("alert-banner");
  if (!banner) return;

  function open() {
    const source = new EventSource(banner.dataset.stream);
    source.addEventListener("alerts", (event) => {
      banner.innerHTML = event.data;
    });
    // EventSource reconnects by itself, unless an answer was not a stream (a
    // 503 while the database is away): then it would never ask again. Opened
    // again a little later; the first event brings the banner whole.
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) setTimeout(open, AGAIN_AFTER_MS);
    });
  }

  open();
})();
