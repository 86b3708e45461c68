// Keeps the desk's lists current without reloading the page: every few seconds (and
// when the tab comes back into view) it fetches /desk/lists with the page's filters
// and swaps the lists in. The filter form is never touched, so what the user is
// typing stays, and the scroll position is kept.
(function () {
  "use strict";
  var box = document.getElementById("desk-lists");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-refresh-url");
  var seconds = parseInt(box.getAttribute("data-refresh-seconds"), 10) || 30;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // Signed out or an error page: keep what is shown; the next round tries again.
        if (!response.ok || response.redirected) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        if (!fresh.querySelector("section")) { return; }
        var x = window.scrollX, y = window.scrollY;
        box.replaceChildren.apply(box, Array.prototype.slice.call(fresh.body.childNodes));
        window.scrollTo(x, y);
        box.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* offline for a moment: try again next round */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { refresh(); }
  });
}());
