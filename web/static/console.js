// The console's "select all" boxes: each ticks (or clears) every case box of its own
// table, for the bulk reassign form. Without this script they stay hidden.
(function () {
  "use strict";
  document.querySelectorAll("input.select-all").forEach(function (all) {
    var table = all.closest("table");
    if (!table) { return; }
    var boxes = table.querySelectorAll("tbody input[type=checkbox][name=case_id]");
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = all.checked; });
    });
    boxes.forEach(function (box) {
      box.addEventListener("change", function () {
        var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; });
        all.checked = ticked.length === boxes.length;
        all.indeterminate = ticked.length > 0 && ticked.length < boxes.length;
      });
    });
  });
}());
