/* pytest-fluxloop report: search, filters and sorting. The page is complete without this
   script (everything is rendered as HTML); it only hides and reorders what is there. */
(function () {
  "use strict";
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  bar.hidden = false;
  var search = document.getElementById("f-q");
  var outcome = document.getElementById("f-o");
  var persona = document.getElementById("f-p");
  var count = document.getElementById("f-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.cases tbody tr"));
  var cases = Array.prototype.slice.call(document.querySelectorAll("details.case"));
  var items = rows.concat(cases);
  var texts = null; // lower-cased text of each item, read on the first search only

  function wanted(el, needle, index) {
    var o = el.getAttribute("data-o");
    var want = outcome.value;
    if (want === "attention" ? o === "passed" : want && o !== want) { return false; }
    if (persona.value) {
      // A row names its persona in its second cell (no attribute: rows are kept lean).
      var p = el.hasAttribute("data-p") ? el.getAttribute("data-p") : el.cells[1].textContent;
      if (p !== persona.value) { return false; }
    }
    if (!needle) { return true; }
    if (texts === null) {
      texts = items.map(function (item) { return item.textContent.toLowerCase(); });
    }
    return texts[index].indexOf(needle) !== -1;
  }

  function apply() {
    var needle = search.value.trim().toLowerCase();
    var shownRows = 0;
    var shownCases = 0;
    items.forEach(function (el, index) {
      var show = wanted(el, needle, index);
      el.hidden = !show;
      if (show) { if (index < rows.length) { shownRows += 1; } else { shownCases += 1; } }
    });
    count.textContent = shownRows + " of " + rows.length + " rows, " + shownCases + " of " +
      cases.length + " transcripts";
  }

  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 120);
  });
  outcome.addEventListener("change", apply);
  persona.addEventListener("change", apply);

  function key(cell) {
    var text = cell ? cell.textContent.trim() : "";
    var number = parseFloat(text.replace(/,/g, ""));
    return isNaN(number) ? text.toLowerCase() : number;
  }

  var table = document.querySelector("table.cases");
  if (table) {
    var heads = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(heads, function (th, column) {
      th.setAttribute("data-sort", "");
      th.setAttribute("tabindex", "0");
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var keyed = rows.map(function (row, i) { return [key(row.cells[column]), i, row]; });
        keyed.sort(function (a, b) {
          var x = a[0], y = b[0];
          var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
            : (typeof x === "number" ? -1 : 1); // numbers before dashes and text
          return (ascending ? order : -order) || a[1] - b[1];
        });
        var body = table.tBodies[0];
        var fragment = document.createDocumentFragment();
        keyed.forEach(function (k) { fragment.appendChild(k[2]); });
        body.appendChild(fragment);
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  }

  // Opening a case from a link (a row, a reliability group) should show it, not scroll to
  // a closed summary line.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (target && target.tagName === "DETAILS") { target.open = true; target.hidden = false; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  apply();
})();
