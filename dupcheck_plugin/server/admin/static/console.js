// The rules table: Add, Remove and reorder rows; the toggle shows or hides the settings.
// No inline script anywhere (the Content-Security-Policy forbids it).
document.addEventListener("DOMContentLoaded", function () {
  var table = document.querySelector("#rules tbody");
  var template = document.getElementById("row-template");
  var toggle = document.getElementById("enabled");
  var settings = document.getElementById("check-settings");
  function showSettings() { if (settings && toggle) settings.hidden = !toggle.checked; }
  if (toggle) { toggle.addEventListener("change", showSettings); showSettings(); }
  var node = document.getElementById("node");  // the node selector shows another check node's settings
  if (node) node.addEventListener("change", function () { node.form.submit(); });
  var add = document.getElementById("add-row");
  if (add && table && template) {
    add.addEventListener("click", function () {
      var row = template.content.firstElementChild.cloneNode(true);
      table.appendChild(row);
      row.querySelector("input[name=row_name]").focus();
    });
  }
  if (table) {
    table.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) return;
      var row = button.closest("tr");
      if (button.classList.contains("remove")) row.remove();
      else if (button.classList.contains("up") && row.previousElementSibling) row.parentNode.insertBefore(row, row.previousElementSibling);
      else if (button.classList.contains("down") && row.nextElementSibling) row.parentNode.insertBefore(row.nextElementSibling, row);
    });
  }
});
