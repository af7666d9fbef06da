// vigil dashboards: small progressive niceties; every page works without this file.
(function () {
  "use strict";
  // Script errors are kept for diagnostics (the browser tests read them) and shown in the footer.
  window.__errors = window.__errors || [];
  window.addEventListener("error", function (e) {
    var what = e && e.message ? e.message : (e && e.target && (e.target.src || e.target.href)) || "resource failed to load";
    window.__errors.push(String(what));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { window.__errors.push("unhandled rejection: " + String(e.reason)); });
  var origError = console.error;
  console.error = function () {
    window.__errors.push(Array.prototype.map.call(arguments, String).join(" "));
    return origError.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () {
    // The time-range picker applies itself on change.
    var range = document.getElementById("range");
    if (range && range.form) {
      range.addEventListener("change", function () { range.form.submit(); });
    }
  });
})();
