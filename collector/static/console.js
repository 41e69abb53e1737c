// crossline console: announce new incidents without a reload (the page works without this).
"use strict";
(function () {
  var body = document.body;
  var newest = Number(body.getAttribute("data-newest") || "0");
  var note = document.getElementById("new-incidents");
  if (!note || !body.hasAttribute("data-poll")) { return; }
  function poll() {
    fetch("/console/poll", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) {
        if (v && typeof v.newest === "number" && v.newest > newest) { note.hidden = false; }
      })
      .catch(function () {});
  }
  window.setInterval(poll, 15000);
})();
