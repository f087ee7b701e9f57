// The campaigns staff pages (campaigns.views): no framework and no inline script,
// the pages will get a strict CSP.
//
// Template editor ([data-template-form]):
// - the channel radios show the email or the SMS fields ([data-channel-only]);
// - a merge tag button ([data-merge-tag]) inserts "{{ name }}" at the cursor of the
//   field last focused ([data-merge-target]; the body of the channel otherwise) and
//   dispatches "input", so the SMS counter and the preview follow;
// - "preview as" asks for the preview on change or Enter only (each lookup of a
//   customer is access-logged);
// - htmx refreshes the preview's words ([data-template-preview], debounced in its
//   hx-trigger). When they are an email's ([data-frame="post"]), the form is posted
//   into a new sandboxed iframe through the hidden [data-frame-submit] button; the
//   iframe replaces the shown one once loaded (no flicker, and a new iframe's first
//   page adds nothing to the browser's history).
// Campaign editor ([data-campaign-form]): the consent select offers only the
// purposes of the chosen template's channel (options carry data-channel).
(function () {
  "use strict";

  // --- Template editor ---------------------------------------------------------

  function chosenChannel(form) {
    var checked = form.querySelector("input[data-template-channel]:checked");
    return checked ? checked.value : "email";
  }

  function showChannel(form) {
    var channel = chosenChannel(form);
    var sections = form.querySelectorAll("[data-channel-only]");
    for (var i = 0; i < sections.length; i += 1) {
      sections[i].hidden = sections[i].getAttribute("data-channel-only") !== channel;
    }
    var frames = form.querySelector("[data-preview-frames]");
    if (frames && channel !== "email") {
      frames.hidden = true;
    }
  }

  function isShown(element) {
    return !!element && !element.closest("[hidden]") && !element.disabled;
  }

  function insertTag(form, state, name) {
    var target = state.lastTarget;
    if (!isShown(target)) {
      var fallback = chosenChannel(form) === "sms" ? "textarea[name='text']" : "textarea[name='html']";
      target = form.querySelector(fallback);
    }
    if (!isShown(target)) {
      return;
    }
    var tag = "{{ " + name + " }}";
    var value = target.value;
    var start = typeof target.selectionStart === "number" ? target.selectionStart : value.length;
    var end = typeof target.selectionEnd === "number" ? target.selectionEnd : start;
    target.value = value.slice(0, start) + tag + value.slice(end);
    target.focus();
    var cursor = start + tag.length;
    if (target.setSelectionRange) {
      target.setSelectionRange(cursor, cursor);
    }
    target.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function refreshFrame(form, holder, state) {
    var button = form.querySelector("[data-frame-submit]");
    if (!button || typeof form.requestSubmit !== "function") {
      return;
    }
    state.frames += 1;
    var sequence = state.frames;
    var frame = document.createElement("iframe");
    frame.name = "template-preview-frame-" + sequence;
    frame.className = "previewframe";
    frame.title = holder.getAttribute("data-frame-title") || "";
    frame.setAttribute("sandbox", "");
    frame.setAttribute("data-preview-frame", "loading");
    frame.setAttribute("data-sequence", String(sequence));
    frame.hidden = true;
    holder.hidden = false;
    holder.appendChild(frame);
    // Attached after insertion: the empty first document has loaded by now.
    frame.addEventListener("load", function () {
      if (sequence < state.shown) {
        frame.remove();
        return;
      }
      state.shown = sequence;
      var frames = holder.querySelectorAll("iframe");
      for (var i = 0; i < frames.length; i += 1) {
        if (Number(frames[i].getAttribute("data-sequence")) < sequence) {
          frames[i].remove();
        }
      }
      frame.hidden = false;
      frame.setAttribute("data-preview-frame", "live");
    });
    button.setAttribute("formtarget", frame.name);
    form.requestSubmit(button);
  }

  function templateEditor(form) {
    var state = { lastTarget: null, frames: 0, shown: 0 };
    form.addEventListener("focusin", function (event) {
      if (event.target.matches("[data-merge-target]")) {
        state.lastTarget = event.target;
      }
    });
    form.addEventListener("change", function (event) {
      if (event.target.matches("input[data-template-channel]")) {
        showChannel(form);
      }
    });
    form.addEventListener("click", function (event) {
      var button = event.target.closest("[data-merge-tag]");
      if (button && form.contains(button)) {
        event.preventDefault();
        insertTag(form, state, button.getAttribute("data-merge-tag"));
      }
    });
    // "Preview as" looks a customer up (and logs it) once the email or number is
    // complete: on change or Enter, not at every keystroke; Enter never saves.
    var previewAs = form.querySelector("input[name='preview_as']");
    if (previewAs) {
      previewAs.addEventListener("input", function (event) {
        event.stopPropagation();
      });
      previewAs.addEventListener("change", function () {
        form.dispatchEvent(new Event("input"));
      });
      previewAs.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();
          form.dispatchEvent(new Event("input"));
        }
      });
    }
    var preview = form.querySelector("[data-template-preview]");
    var holder = form.querySelector("[data-preview-frames]");
    if (preview && holder) {
      preview.addEventListener("htmx:afterSwap", function () {
        var result = preview.querySelector("[data-preview-result]");
        if (result && result.getAttribute("data-frame") === "post") {
          refreshFrame(form, holder, state);
        } else {
          holder.hidden = true;
        }
      });
    }
    showChannel(form);
  }

  // --- Campaign editor -----------------------------------------------------------

  function filterPurposes(form) {
    var template = form.querySelector("select[data-campaign-template]");
    var purpose = form.querySelector("select[data-campaign-purpose]");
    if (!template || !purpose) {
      return;
    }
    var selected = template.options[template.selectedIndex];
    var channel = selected ? selected.getAttribute("data-channel") : null;
    for (var i = 0; i < purpose.options.length; i += 1) {
      var option = purpose.options[i];
      var own = option.getAttribute("data-channel");
      var foreign = !!(channel && own && own !== channel);
      option.hidden = foreign;
      option.disabled = foreign;
      if (foreign && option.selected) {
        purpose.value = "";
        purpose.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }
  }

  function campaignEditor(form) {
    form.addEventListener("change", function (event) {
      if (event.target.matches("select[data-campaign-template]")) {
        filterPurposes(form);
      }
    });
    filterPurposes(form);
  }

  function start() {
    var forms = document.querySelectorAll("[data-template-form]");
    for (var i = 0; i < forms.length; i += 1) {
      templateEditor(forms[i]);
    }
    forms = document.querySelectorAll("[data-campaign-form]");
    for (var j = 0; j < forms.length; j += 1) {
      campaignEditor(forms[j]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
