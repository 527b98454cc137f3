// Share page: check the STIX pattern as it is typed, with the server's own validator (the one ingest
// uses). Only an aid: the form is checked again when it is sent, and works without this file.
document.addEventListener("DOMContentLoaded", function () {
  var field = document.getElementById("sh-pattern");
  var out = document.getElementById("sh-pattern-check");
  if (!field || !out) { return; }
  var timer = null;
  var asked = 0;
  function check() {
    var mine = ++asked;
    fetch("/console/share/check?pattern=" + encodeURIComponent(field.value), {credentials: "same-origin"})
      .then(function (answer) { return answer.json(); })
      .then(function (verdict) {
        if (mine !== asked) { return; }  // a later keystroke has asked again
        out.textContent = verdict.message;
        out.className = "check " + (verdict.valid ? "valid" : "invalid");
      })
      .catch(function () { out.textContent = ""; });
  }
  field.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  });
});
