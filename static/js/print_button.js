// A button with data-print prints the page (no onclick attribute: the Content
// Security Policy refuses inline event handlers).
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-print]");
    if (button) {
      event.preventDefault();
      window.print();
    }
  });
})();
