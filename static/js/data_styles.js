// Styles that depend on data, set from data attributes: the Content Security Policy
// refuses style attributes in the markup (style-src 'self'), while styles set
// through the CSSOM, as here, are allowed.
//
//   <span class="chip" data-chip-color="#0f766e">   the tag's colour (--chip)
//   <div class="progress__fill" data-width="42">    a bar's width in per cent
//
// Runs once the page is parsed and again on content htmx swaps in.
(function () {
  "use strict";

  var HEX_COLOR = /^#[0-9a-fA-F]{6}$/;

  function apply(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    var chips = root.querySelectorAll("[data-chip-color]");
    for (var i = 0; i < chips.length; i += 1) {
      var color = chips[i].getAttribute("data-chip-color");
      if (HEX_COLOR.test(color)) {
        chips[i].style.setProperty("--chip", color);
      }
    }
    var bars = root.querySelectorAll("[data-width]");
    for (var j = 0; j < bars.length; j += 1) {
      var share = parseFloat(bars[j].getAttribute("data-width"));
      if (isFinite(share)) {
        bars[j].style.width = Math.max(0, Math.min(100, share)) + "%";
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      apply(document);
    });
  } else {
    apply(document);
  }
  document.addEventListener("htmx:load", function (event) {
    apply(event.target);
  });
})();
