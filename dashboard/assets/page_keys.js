// Keyboard for the whole page: Escape closes the phone's filters drawer when it is open, else
// clears the selected hexagon (as the "Clear selection" button does), and Tab always leaves
// the hotspot table. The table moves its active cell on
// Tab, so a keyboard user who entered it never reached the charts, gallery or exports.
(function () {
  window.addEventListener(
    "keydown",
    function (event) {
      const target = event.target;
      if (event.key === "Escape") {
        if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
        const toggle = document.getElementById("filters-toggle");
        if (toggle && toggle.getAttribute("aria-expanded") === "true") {
          toggle.click();
          toggle.focus();
          return;
        }
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

// A click on the map where no hexagon is clears the selection too (as Esc and the button do).
// Plotly reports a click only on a hexagon or a camera dot (plotly_click); a click on the map's
// empty ground that is no drag (the map pans by dragging) and that Plotly did not report as a
// point within a moment clicks the "Clear selection" button.
(function () {
  let down = null;
  function canvasOfMap(target) {
    return target && target.closest && target.closest("#hotspot-map .maplibregl-canvas-container");
  }
  document.addEventListener(
    "mousedown",
    function (event) {
      down = canvasOfMap(event.target) ? { x: event.clientX, y: event.clientY } : null;
    },
    true
  );
  document.addEventListener(
    "click",
    function (event) {
      if (!canvasOfMap(event.target) || down === null) return;
      const moved = Math.hypot(event.clientX - down.x, event.clientY - down.y);
      down = null;
      if (moved > 4) return; // a pan, not a click
      const graph = event.target.closest(".js-plotly-plot");
      if (!graph || !graph.on) return;
      if (!graph.__unciaPointClicks) {
        graph.__unciaPointClicks = { last: 0 };
        graph.on("plotly_click", function () {
          graph.__unciaPointClicks.last = performance.now();
        });
      }
      const clickedAt = performance.now();
      setTimeout(function () {
        if (graph.__unciaPointClicks.last >= clickedAt) return; // a hexagon or a dot
        const title = document.getElementById("detections-title");
        if (title && title.innerText.startsWith("Click a hexagon")) return; // nothing selected
        const clear = document.getElementById("clear-selection");
        if (clear) clear.click();
      }, 120);
    },
    true
  );
})();
