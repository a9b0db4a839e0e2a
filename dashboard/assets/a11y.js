// Accessibility repairs of the markup Dash 4's components draw, which their properties cannot
// set (axe-core flagged each; tests/test_dashboard_a11y_browser.py keeps them fixed):
// - radio items (and check lists) are a "listbox" of <label role="option"> each holding a real
//   input (an interactive control inside another): they become a named "radiogroup" (a named
//   "group") of plain labels;
// - the threshold slider's thumb and its number box have no name: they take their control's;
// - a dropdown keeps a hidden (aria-hidden) input in the Tab order: it leaves the Tab order
//   (the dropdown's own button is what Tab reaches);
// - the date range's wrapper claims aria-expanded without a role that allows it;
// - a table that scrolls sideways cannot be reached by keyboard: it becomes a named region.
// Repairs run again whenever Dash redraws a component, after the frame it drew.
(function () {
  function controlName(el) {
    const control = el.closest(".control");
    const label = control && control.querySelector(":scope > label");
    return label ? label.textContent.trim() : null;
  }
  function name(el, text) {
    if (text && el.getAttribute("aria-label") !== text) el.setAttribute("aria-label", text);
  }
  function repair() {
    document.querySelectorAll('.dash-radioitems[role="listbox"]').forEach(function (group) {
      group.setAttribute("role", "radiogroup");
    });
    document.querySelectorAll('.dash-checklist[role="listbox"]').forEach(function (group) {
      group.setAttribute("role", "group");
    });
    document.querySelectorAll(".dash-radioitems, .dash-checklist").forEach(function (group) {
      if (group.getAttribute("aria-label")) return;
      const section = group.closest("section");
      const heading = section && section.querySelector("h2");
      name(group, controlName(group) || (heading && heading.textContent.trim()));
    });
    document
      .querySelectorAll('.dash-options-list [role="option"]')
      .forEach(function (option) {
        if (option.querySelector("input")) {
          option.removeAttribute("role");
          option.removeAttribute("aria-selected");
        }
      });
    document.querySelectorAll('.dash-slider-thumb[role="slider"]').forEach(function (thumb) {
      if (!thumb.getAttribute("aria-label")) name(thumb, controlName(thumb));
    });
    document.querySelectorAll("input.dash-range-slider-input").forEach(function (box) {
      if (!box.getAttribute("aria-label")) name(box, controlName(box));
    });
    document
      .querySelectorAll('input.dash-dropdown-focus-target[aria-hidden="true"]')
      .forEach(function (input) {
        if (input.tabIndex !== -1) input.tabIndex = -1;
      });
    document
      .querySelectorAll(".dash-datepicker-input-wrapper[aria-expanded]")
      .forEach(function (wrapper) {
        wrapper.removeAttribute("aria-expanded");
      });
    document.querySelectorAll(".dash-spreadsheet-container").forEach(function (table) {
      if (table.getAttribute("tabindex") !== "0") table.setAttribute("tabindex", "0");
      if (table.getAttribute("role") !== "region") table.setAttribute("role", "region");
      const section = table.closest("section");
      const heading = section && section.querySelector("h2");
      name(table, heading ? heading.textContent.trim() + " (table)" : "table");
    });
  }
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      repair();
    });
  }
  new MutationObserver(schedule).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["role", "aria-selected", "tabindex", "aria-expanded"],
  });
  schedule();
})();
