// The case page's helpers; the page works without them. A reply template (话术) goes
// into its form's text field at the caret, without reloading the page (what was typed
// anywhere else stays), and sets the fields it names (root cause, responsible party,
// resolution type, ...), like a macro. A link to a form behind "more" opens it.
(function () {
  "use strict";

  function insert(field, text) {
    if (!field.value.trim()) {
      field.value = text;
    } else if (field.getAttribute("data-caret") === "1" &&
               typeof field.selectionStart === "number") {
      field.setRangeText(text, field.selectionStart, field.selectionEnd, "end");
    } else {
      field.value = field.value.replace(/\s+$/, "") + "\n" + text;
    }
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // A field the user has been in has a caret to insert at; one never entered is added to.
  document.addEventListener("focusin", function (event) {
    var field = event.target;
    if (field.tagName === "TEXTAREA" || field.tagName === "INPUT") {
      field.setAttribute("data-caret", "1");
    }
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.template[data-text]") : null;
    var form = link ? link.closest("form") : null;
    var field = form ? form.elements.namedItem(link.getAttribute("data-field")) : null;
    if (!field || !("value" in field)) { return; }  // the link fills the form instead
    event.preventDefault();
    var sets = {};
    try { sets = JSON.parse(link.getAttribute("data-set") || "{}"); } catch (e) { sets = {}; }
    Object.keys(sets).forEach(function (name) {
      var control = form.elements.namedItem(name);
      if (control && "value" in control) {
        control.value = sets[name];
        control.dispatchEvent(new Event("change", { bubbles: true }));
      }
    });
    insert(field, link.getAttribute("data-text"));
    field.focus();
  });

  // A form behind "more" named in the address (#act-reply): open it and show it.
  function reveal() {
    var id;
    // A malformed address (#%, #%E4) names no form: nothing to open.
    try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (e) { return; }
    var target = id ? document.getElementById(id) : null;
    var opened = false;
    for (var node = target ? target.parentElement : null; node; node = node.parentElement) {
      if (node.tagName === "DETAILS" && !node.open) { node.open = true; opened = true; }
    }
    if (opened) { target.scrollIntoView(); }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
}());
