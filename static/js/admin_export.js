// The admin's export page (templates/admin/import_export/export.html): the "Select
// all" box ticks or unticks every field, through django-import-export's own
// onSelectToggleChange, bound here because the Content Security Policy refuses the
// package's onchange attribute.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    if (
      event.target.matches &&
      event.target.matches(".select-toggle") &&
      typeof window.onSelectToggleChange === "function"
    ) {
      window.onSelectToggleChange(event);
    }
  });
})();
