// Keyboard for the whole page: Escape clears the selected hexagon (as the "Clear selection"
// button does), and Tab always leaves the hotspot table. The table moves its active cell on
// Tab, so a keyboard user who entered it never reached the charts, gallery or exports.
(function () {
  window.addEventListener(
    "keydown",
    function (event) {
      const target = event.target;
      if (event.key === "Escape") {
        if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
        const clear = document.getElementById("clear-selection");
        if (clear) clear.click();
        return;
      }
      if (event.key !== "Tab" || !target || !target.closest) return;
      const table = target.closest("#hotspot-table");
      if (!table) return;
      // Let the browser move focus, not the table: stop the table's own handler only.
      event.stopImmediatePropagation();
      event.stopPropagation();
      const focusable = Array.from(
        document.querySelectorAll(
          'a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex]:not([tabindex="-1"])'
        )
      ).filter(function (el) {
        return el.offsetParent !== null || el === document.activeElement;
      });
      const outside = focusable.filter(function (el) {
        return !table.contains(el);
      });
      const after = outside.filter(function (el) {
        return table.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING;
      });
      const before = outside.filter(function (el) {
        return table.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING;
      });
      const next = event.shiftKey ? before[before.length - 1] : after[0];
      if (next) {
        event.preventDefault();
        next.focus();
      }
    },
    true
  );
})();
