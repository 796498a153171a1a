// Admin forms that must not lose what was typed (the permission matrix): a
// row whose ticks differ from what was loaded shows "not saved", and leaving
// the page with such a row asks first. Submitting the form is not leaving.
"use strict";

(function () {
  for (const form of document.querySelectorAll("form[data-unsaved-warning]")) {
    let submitting = false;
    const summary = form.querySelector("[data-testid=unsaved-summary]");

    function changed(row) {
      return Array.from(row.querySelectorAll("input[type=checkbox]"))
        .some((box) => box.checked !== box.defaultChecked);
    }

    function mark() {
      let any = false;
      for (const row of form.querySelectorAll("tbody tr")) {
        const dirty = changed(row);
        row.classList.toggle("dirty", dirty);
        const marker = row.querySelector(".unsaved");
        if (marker) marker.hidden = !dirty;
        any = any || dirty;
      }
      if (summary) summary.hidden = !any;
      return any;
    }

    form.addEventListener("change", mark);
    form.addEventListener("submit", () => { submitting = true; });
    window.addEventListener("beforeunload", (event) => {
      if (submitting || !mark()) return;
      event.preventDefault();
      event.returnValue = "";  // older browsers show their prompt only with a value set
    });
    mark();  // a reload may have kept the browser's own ticks
  }
})();
