// Shows every <time datetime="..."> in the reader's own time zone and language.
// The server renders the store's time zone; without this script that text stays.
(function () {
  "use strict";
  var lang = document.documentElement.lang || undefined;
  var long = document.querySelectorAll("time[datetime]");
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  long.forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) { return; }
    var opts = { dateStyle: "medium", timeStyle: "short", timeZone: zone };
    if (el.closest(".by")) { opts.timeZoneName = "short"; delete opts.timeStyle;
      opts.hour = "2-digit"; opts.minute = "2-digit"; opts.year = "numeric";
      opts.month = "short"; opts.day = "numeric"; delete opts.dateStyle; }
    el.textContent = new Intl.DateTimeFormat(lang, opts).format(when);
    el.title = zone;
  });
}());
