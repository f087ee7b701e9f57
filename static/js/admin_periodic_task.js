// The admin's periodic task form (templates/admin/djcelery/change_periodictask_form
// .html): django-celery-beat's inline script as a file, since the Content Security
// Policy refuses inline scripts. Under the crontab field, the chosen schedule in
// words; the field that shows the same text read-only is hidden.
(function () {
  "use strict";

  function start() {
    var data = document.getElementById("readable-crontabs");
    var holder = document.getElementById("periodic-task-overrides");
    var select = document.getElementById("id_crontab");
    if (!data || !holder || !select) {
      return;
    }
    var readable = JSON.parse(data.textContent);
    var original = holder.getAttribute("data-crontab-help") || "";
    var label = holder.getAttribute("data-words-label") || "";
    var help = document.querySelector(".field-crontab .help");
    var translation = document.querySelector(".field-crontab_translation");
    if (translation) {
      translation.hidden = true;
    }
    select.addEventListener("change", function () {
      if (!help) {
        return;
      }
      help.textContent = original;
      var words = readable[select.value];
      if (words) {
        help.appendChild(document.createElement("br"));
        help.appendChild(document.createTextNode(label + " " + words));
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
