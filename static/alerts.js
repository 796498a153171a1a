// The live alert banner: the open alerts, sent whole over server-sent events
// whenever they change (quality/pages/alerts/views.py).
"use strict";

(function () {
  const banner = document.getElementById("alert-banner");
  if (!banner) return;
  const source = new EventSource(banner.dataset.stream);
  source.addEventListener("alerts", (event) => {
    banner.innerHTML = event.data;
  });
})();
