// The header search box (templates/base.html). htmx fills the panel under the box as
// the user types (customers:search); this file adds the keys support staff use all
// day: "/" focuses the box from anywhere (unless typing in another field), Arrow
// Down/Up move through the results, Enter opens the highlighted one (or, with none
// highlighted, submits the form to the full customer list), Escape closes the
// panel. ARIA 1.1 combobox: a container (role combobox, aria-expanded) owns the
// box and the listbox of results; the box keeps the focus and points at the
// highlighted option with aria-activedescendant. No inline script: a Content
// Security Policy comes.
(function () {
  "use strict";

  var form = document.querySelector("[data-globalsearch]");
  if (!form) {
    return;
  }
  var combo = form.querySelector("[role='combobox']");
  var input = form.querySelector("input[type='search']");
  var panel = form.querySelector(".globalsearch__panel");
  if (!combo || !input || !panel) {
    return;
  }
  var active = -1;
  // Escape closes the panel until the next keystroke, even if an answer arrives.
  var dismissed = false;

  function options() {
    return panel.querySelectorAll("[role='option']");
  }

  function hasContent() {
    return panel.textContent.trim() !== "";
  }

  function highlight(index) {
    var items = options();
    active = items.length ? Math.max(-1, Math.min(index, items.length - 1)) : -1;
    for (var i = 0; i < items.length; i += 1) {
      var on = i === active;
      items[i].setAttribute("aria-selected", on ? "true" : "false");
      items[i].classList.toggle("is-active", on);
    }
    if (active >= 0) {
      input.setAttribute("aria-activedescendant", items[active].id);
      items[active].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function open() {
    if (dismissed || !hasContent()) {
      return;
    }
    panel.hidden = false;
    combo.setAttribute("aria-expanded", options().length ? "true" : "false");
  }

  function close() {
    panel.hidden = true;
    combo.setAttribute("aria-expanded", "false");
    highlight(-1);
  }

  function isTyping(element) {
    if (!element || element === document.body) {
      return false;
    }
    if (element.isContentEditable) {
      return true;
    }
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") {
      return true;
    }
    if (tag === "INPUT") {
      var type = (element.getAttribute("type") || "text").toLowerCase();
      return ["button", "submit", "reset", "checkbox", "radio", "file", "image"].indexOf(type) === -1;
    }
    return false;
  }

  // "/" from anywhere on the page.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) {
      return;
    }
    if (isTyping(event.target)) {
      return;
    }
    event.preventDefault();
    input.focus();
    input.select();
  });

  input.addEventListener("keydown", function (event) {
    var count = options().length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!count) {
        return;
      }
      event.preventDefault();
      dismissed = false;
      if (panel.hidden) {
        open();
        highlight(event.key === "ArrowDown" ? 0 : count - 1);
        return;
      }
      // Up from the box goes to the last result; past either end, back to the box
      // itself (nothing highlighted).
      var next = active + (event.key === "ArrowDown" ? 1 : -1);
      if (next === -2) {
        next = count - 1;
      } else if (next >= count) {
        next = -1;
      }
      highlight(next);
    } else if (event.key === "Enter") {
      if (panel.hidden || active < 0) {
        return; // the form goes to the full list
      }
      var link = options()[active].querySelector("[data-search-link]");
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
    } else if (event.key === "Escape") {
      if (!panel.hidden) {
        // Keep the typed text (a search box clears itself on Escape otherwise).
        event.preventDefault();
        dismissed = true;
        if (window.htmx) {
          window.htmx.trigger(input, "htmx:abort");
        }
        close();
      }
    }
  });

  input.addEventListener("input", function () {
    dismissed = false;
    if (input.value.trim() === "") {
      close();
    }
  });

  input.addEventListener("focus", open);

  // htmx put new results in: nothing highlighted, shown while the user is here.
  panel.addEventListener("htmx:afterSwap", function () {
    highlight(-1);
    if (input.value.trim() === "" || !hasContent()) {
      close();
    } else if (form.contains(document.activeElement)) {
      open();
    }
  });

  panel.addEventListener("mousemove", function (event) {
    var option = event.target.closest("[role='option']");
    if (!option) {
      return;
    }
    var items = options();
    for (var i = 0; i < items.length; i += 1) {
      if (items[i] === option && i !== active) {
        highlight(i);
      }
    }
  });

  // A press on a result keeps the focus in the box (the click still opens the link):
  // browsers that do not focus links on click would otherwise close the panel first.
  panel.addEventListener("mousedown", function (event) {
    event.preventDefault();
  });

  // Focus or a click elsewhere closes the panel; moving into its links does not.
  form.addEventListener("focusout", function (event) {
    if (!event.relatedTarget || !form.contains(event.relatedTarget)) {
      close();
    }
  });
  document.addEventListener("click", function (event) {
    if (!form.contains(event.target)) {
      close();
    }
  });
})();
