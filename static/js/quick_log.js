// The quick log's keyboard: "L" opens it (when not typing somewhere), focus goes to
// its first field, Enter logs from a one-line field (the browser's own submit),
// Ctrl/Cmd+Enter from the text, Esc closes it. The rating shows only for reviews and
// surveys. Without this file the form works the same, with the mouse and the
// browser's keys. No inline scripts: the page will get a strict CSP.
(function () {
  "use strict";

  var FIELDS = "select, input:not([type='hidden']), textarea";

  function panel() {
    return document.querySelector("[data-quick-log-panel]");
  }

  function firstField(root) {
    var form = root && root.querySelector("form[data-quick-log]");
    if (!form) {
      return null;
    }
    // After a failed attempt the first field with an error, else the first one.
    var invalid = form.querySelector(
      ".field--error select, .field--error input, .field--error textarea"
    );
    return invalid || form.querySelector(FIELDS);
  }

  function focusFirst(root) {
    var field = firstField(root);
    if (field) {
      field.focus();
    }
  }

  function typing(target) {
    if (!target || !target.tagName) {
      return false;
    }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function syncRating(form) {
    var box = form.querySelector("[data-rating-for]");
    var kind = form.querySelector("select[name='kind']");
    if (!box || !kind) {
      return;
    }
    var kinds = box.getAttribute("data-rating-for").split(" ");
    var show = kinds.indexOf(kind.value) !== -1;
    box.hidden = !show;
    if (!show) {
      var rating = box.querySelector("input[name='rating']");
      if (rating) {
        rating.value = "";
      }
    }
  }

  function setUp(root) {
    var forms = (root || document).querySelectorAll("form[data-quick-log]");
    for (var i = 0; i < forms.length; i += 1) {
      syncRating(forms[i]);
    }
  }

  document.addEventListener("keydown", function (event) {
    var form = event.target.closest && event.target.closest("form[data-quick-log]");
    if (form && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
      return;
    }
    var box = panel();
    if (!box) {
      return;
    }
    if (form && event.key === "Escape" && box.tagName.toLowerCase() === "details") {
      box.open = false;
      var toggle = box.querySelector("summary");
      if (toggle) {
        toggle.focus();
      }
      return;
    }
    if (
      (event.key === "l" || event.key === "L") &&
      !event.ctrlKey && !event.metaKey && !event.altKey &&
      !typing(event.target)
    ) {
      event.preventDefault();
      if (box.tagName.toLowerCase() === "details") {
        box.open = true;
      }
      box.scrollIntoView({ block: "nearest" });
      focusFirst(box);
    }
  });

  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-quick-log]");
    if (form && event.target.name === "kind") {
      syncRating(form);
    }
  });

  // Opened with the mouse or the keyboard on its summary: straight to the first field.
  document.addEventListener(
    "toggle",
    function (event) {
      var box = event.target;
      if (box.matches && box.matches("details[data-quick-log-panel]") && box.open) {
        focusFirst(box);
      }
    },
    true
  );

  // htmx put in a new form (emptied after a success, or with errors): keep typing
  // in the same place (the customer page's panel or the search's dialog). Only
  // after the quick log's own request: a timeline reload leaves focus alone.
  var host = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.matches && source.matches("form[data-quick-log]")) {
      host = source.parentNode;
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var config = event.detail && event.detail.requestConfig;
    var source = config && config.elt;
    if (!source || !source.matches || !source.matches("form[data-quick-log]")) {
      return;
    }
    setUp(document);
    focusFirst(host || document);
  });

  // The search results' "Log" link loads the form into the dialog of base.html:
  // open it there, cursor in the first field; Esc closes it (the browser's own).
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    var dialog = target && target.closest && target.closest("dialog[data-quick-log-dialog]");
    if (!dialog) {
      return;
    }
    setUp(dialog);
    if (!dialog.open) {
      dialog.showModal();
    }
    focusFirst(dialog);
  });
  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-dialog-close]");
    var dialog = close && close.closest("dialog");
    if (dialog) {
      dialog.close();
    }
  });

  function start() {
    setUp(document);
    var box = panel();
    // A page of its own (no JavaScript-free details to open), or the form came back
    // with errors: the cursor waits in it.
    if (box && (box.hasAttribute("data-autofocus") || box.open)) {
      focusFirst(box);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
