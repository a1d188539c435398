// Keyboard shortcuts of the review page: with focus outside a text field, F, A, P and U pick
// the label (confirmed_fake, confirmed_authentic, false_positive, unclear) of the first item
// you hold and move focus to its Resolve button.
(function () {
  "use strict";
  var keys = { f: "confirmed_fake", a: "confirmed_authentic", p: "false_positive", u: "unclear" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var label = keys[event.key.toLowerCase()];
    if (!label) return;
    var form = document.querySelector("form.resolve");
    if (!form) return;
    var radio = form.querySelector('input[name="label"][value="' + label + '"]');
    if (!radio) return;
    radio.checked = true;
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) button.focus();
  });
})();
