// Canvas live reload: reload this page when it, or a file beside it, changes in the
// canvas store. Injected by http-api into every canvas HTML page.
(function () {
  "use strict";
  var script = document.currentScript;
  var page = (script && script.getAttribute("data-canvas")) || "";
  var slash = page.lastIndexOf("/");
  var dir = slash >= 0 ? page.slice(0, slash + 1) : "";
  var timer = null;
  var source = new EventSource("/canvas/__aisopod/events");
  source.addEventListener("change", function (event) {
    var change;
    try {
      change = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (change.name === page || change.name.indexOf(dir) === 0) {
      clearTimeout(timer);
      timer = setTimeout(function () {
        window.location.reload();
      }, 100);
    }
  });
})();
