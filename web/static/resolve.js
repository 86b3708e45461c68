// The resolve form on the case page (templates/_resolve_fields.html). Shows only the
// fields of the chosen resolution type (each field names its types in data-types;
// hidden fields are disabled, so they are not sent), and keeps the "what will happen"
// line current: the money the remedies refund against what is left on the order and
// the approval limit, from what the server rendered into the line (data-*). Without
// this script every field shows and the line says the limit and what is left. The
// workflow's validator stays the judge: this only says beforehand what it will say.
(function () {
  "use strict";
  var form = document.getElementById("act-resolve");
  if (!form) { return; }
  var outcome = document.getElementById("resolve-outcome");
  // The server's own line (what is left, the limit): said while no amount is typed.
  var initial = outcome ? outcome.textContent.trim() : "";

  function scopeOf(select) {
    // Row 1's fields are the form's own; a further remedy's are inside its <details>.
    return select.closest("details.remedy-row") || form;
  }

  function rowFields(scope) {
    return Array.prototype.filter.call(scope.querySelectorAll(".field[data-types]"),
      function (field) {
        return scope !== form || !field.closest("details.remedy-row");
      });
  }

  function chosenTypes() {
    return Array.prototype.map.call(form.querySelectorAll("select[data-remedy-type]"),
      function (select) { return select.value; }).filter(Boolean);
  }

  function show(field, visible) {
    field.hidden = !visible;
    Array.prototype.forEach.call(field.querySelectorAll("input, select, textarea"),
      function (input) { input.disabled = !visible; });
  }

  function update() {
    var types = chosenTypes();
    Array.prototype.forEach.call(form.querySelectorAll("select[data-remedy-type]"),
      function (select) {
        var scope = scopeOf(select);
        rowFields(scope).forEach(function (field) {
          var wanted = field.getAttribute("data-types").split(" ");
          // The items go with whichever remedy moves goods.
          var pool = field.tagName === "FIELDSET" ? types : [select.value];
          show(field, pool.some(function (t) { return wanted.indexOf(t) >= 0; }));
        });
      });
    say();
  }

  function cents(text) {
    var value = parseFloat(text);
    return isFinite(value) && value > 0 ? Math.round(value * 100) : 0;
  }

  function money(amount) {
    // Formatted as the server formats money: its sample with the digits swapped.
    var sample = outcome.getAttribute("data-sample");
    var whole = Math.floor(amount / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var text = whole + "." + ("0" + (amount % 100)).slice(-2);
    return sample.replace("1,234,567.89", text);
  }

  function itemsValue() {
    var total = 0;
    Array.prototype.forEach.call(form.querySelectorAll("input[data-price]"), function (input) {
      var quantity = parseInt(input.value, 10);
      if (!input.disabled && quantity > 0) { total += cents(input.getAttribute("data-price")) * quantity; }
    });
    return total;
  }

  function moneyBack() {
    // What the remedies refund (workflows/case/remedies.py money_back): a refund's
    // amount, a money compensation's, a return's amount or else its items' value.
    var total = 0, coupon = false, money = false;
    Array.prototype.forEach.call(form.querySelectorAll("select[data-remedy-type]"),
      function (select) {
        var scope = scopeOf(select), type = select.value;
        var fields = rowFields(scope);
        function value(attr) {
          for (var i = 0; i < fields.length; i++) {
            var input = fields[i].querySelector("input[" + attr + "]");
            if (input && !input.disabled) { return input.value.trim(); }
          }
          return "";
        }
        var amount = cents(value("data-money"));
        var granted = value("data-coupon") || value("data-points");
        if (value("data-coupon")) { coupon = true; }
        if (type === "refund" || (type === "compensation" && !granted)) {
          total += amount;
          money = true;
        }
        if (type === "return_refund") {
          total += amount || itemsValue();
          money = true;
        }
      });
    return { amount: total, coupon: coupon, money: money };
  }

  function say() {
    if (!outcome) { return; }
    var asked = moneyBack();
    var left = cents(outcome.getAttribute("data-refundable"));
    var limit = cents(outcome.getAttribute("data-limit"));
    var refunded = cents(outcome.getAttribute("data-refunded"));
    var text;
    if (!asked.amount) {
      // A refund not yet typed: what is left and the limit; else nothing is refunded.
      text = asked.money ? initial : outcome.getAttribute("data-say-none");
    } else if (asked.amount > left) {
      text = outcome.getAttribute("data-say-over");
    } else if (refunded + asked.amount > limit) {
      text = outcome.getAttribute("data-say-approval");
    } else {
      text = outcome.getAttribute("data-say-paid");
    }
    text = text.replace("{amount}", money(asked.amount))
      .replace("{total}", money(refunded + asked.amount))
      .replace("{after}", money(Math.max(left - asked.amount, 0)));
    if (asked.coupon) { text += " " + outcome.getAttribute("data-say-coupon"); }
    outcome.textContent = text;
    outcome.setAttribute("data-asked", (asked.amount / 100).toFixed(2));
    outcome.classList.toggle("error", asked.amount > left);
  }

  form.addEventListener("change", update);
  form.addEventListener("input", say);
  update();
}());
