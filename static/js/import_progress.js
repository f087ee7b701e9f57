// The import wizard's progress page: poll the job's status once a second and update
// the bar, the rows read and the rows per second; reload the page when the job stops
// moving (checked, done, failed or cancelled), where the server shows the outcome.
(function () {
  "use strict";

  var box = document.querySelector("[data-import-status]");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-import-status");
  var lang = document.documentElement.lang || undefined;
  var bar = box.querySelector("[role='progressbar']");
  var fill = box.querySelector(".progress__fill");
  var failures = 0;

  function number(value) {
    return Number(value || 0).toLocaleString(lang, { maximumFractionDigits: 0 });
  }

  function show(name, text) {
    var nodes = box.querySelectorAll("[data-field='" + name + "']");
    for (var i = 0; i < nodes.length; i += 1) {
      nodes[i].textContent = text;
    }
  }

  function update(state) {
    show("rows_done", number(state.rows_done));
    show("rows_per_second", number(state.rows_per_second));
    show("status", state.status_display);
    if (state.rows_total) {
      var share = Math.min(100, (100 * state.rows_done) / state.rows_total);
      bar.classList.remove("progress--indeterminate");
      bar.setAttribute("aria-valuemax", String(state.rows_total));
      bar.setAttribute("aria-valuenow", String(state.rows_done));
      fill.style.width = share.toFixed(1) + "%";
      show("percent", Math.floor(share) + " %");
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        failures = 0;
        update(state);
        if (!state.active) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        failures += 1;
        window.setTimeout(poll, Math.min(1000 * Math.pow(2, failures), 30000));
      });
  }

  window.setTimeout(poll, 1000);
})();
