// Shows every <time datetime="..."> in the reader's own time zone and language.
// The server renders the store's time zone; without this script that text stays.
// A promised time (data-zone: the zone it was written in, named in words) stays as it
// is for a reader in that zone, and is rewritten, with the reader's zone named, for
// anyone elsewhere.
(function () {
  "use strict";
  var lang = document.documentElement.lang || undefined;
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  // Other names of the zone China keeps (one clock for the whole country).
  var SAME = { "Asia/Chongqing": "Asia/Shanghai", "Asia/Chungking": "Asia/Shanghai",
               "Asia/Harbin": "Asia/Shanghai", "PRC": "Asia/Shanghai" };
  function canonical(name) { return SAME[name] || name; }
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) { return; }
    el.title = zone;
    var written = el.getAttribute("data-zone");
    if (written && canonical(written) === canonical(zone)) { return; }
    var opts = { dateStyle: "medium", timeStyle: "short", timeZone: zone };
    if (written) {
      opts = { timeZone: zone, month: "short", day: "numeric", weekday: "short",
               hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "long" };
      if (when.getFullYear() !== new Date().getFullYear()) { opts.year = "numeric"; }
    }
    el.textContent = new Intl.DateTimeFormat(lang, opts).format(when);
  });
}());
