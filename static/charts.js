// The reports' charts: a click on a mark (a point, a bar, a cell) opens the
// scan list behind it. The marks hold no links, so a keyboard passes each
// chart in one step (its "Data table" link); the tables carry the same links.
"use strict";

document.addEventListener("click", (event) => {
  const mark = event.target.closest("svg.chart [data-href]");
  if (mark) window.location.assign(mark.dataset.href);
});
