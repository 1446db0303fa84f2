// hookscheduler dashboard: live refresh and confirmations, without a framework or a build step.
// Every few seconds (data-live on <main>) the page's own URL is fetched again and <main> is swapped for the
// fresh one, unless the person is typing in a form or the tab is hidden. Pages work fully without this file.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var busy = false;
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  document.addEventListener("input", function () { busy = true; });
  if (!main) { return; }
  var seconds = parseInt(main.getAttribute("data-live") || "0", 10);
  if (!seconds) { return; }
  function refresh() {
    var active = document.activeElement;
    if (document.hidden || busy || (active && /INPUT|SELECT|TEXTAREA/.test(active.tagName)) ||
        main.querySelector("details[open]")) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live": "1"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html || busy) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) { main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes)); }
        main.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next round tries again */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
