// Progressive enhancement only: every page works without this file.
// Filter menus submit their form when changed, so a reader with JavaScript need not press "Filter".
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.form) { select.form.submit(); }
    });
  });
});
