// Keyboard shortcuts of the review gallery: on a focused card, c confirms, x rejects,
// l relabels (with the label chosen in the gallery's "Relabel as"), j / k move to the next /
// previous card.
// After a decision the gallery is redrawn; focus then moves on to the card after it.
(function () {
  let follow = null; // {burst, until}: keep focus on this card while the gallery redraws
  function cards() {
    return Array.from(document.querySelectorAll("#review-gallery .review-card"));
  }
  document.addEventListener("keydown", function (event) {
    const active = document.activeElement;
    const card = active && active.closest ? active.closest(".review-card") : null;
    if (!card || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.tagName === "INPUT" || event.target.tagName === "TEXTAREA") return;
    follow = null;
    const list = cards();
    const index = list.indexOf(card);
    const decide = function (decision) {
      const button = card.querySelector('button[data-decision="' + decision + '"]');
      if (!button) return;
      const next = list[index + 1] || card;
      follow = { burst: next.getAttribute("data-burst"), until: Date.now() + 20000 };
      button.click();
      event.preventDefault();
    };
    const move = function (step) {
      const next = list[index + step];
      if (next) {
        next.focus();
        event.preventDefault();
      }
    };
    if (event.key === "c") decide("confirm");
    else if (event.key === "x") decide("reject");
    else if (event.key === "l") decide("relabel");
    else if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
  });
  document.addEventListener("mousedown", function () {
    follow = null; // the user went elsewhere: stop pulling focus back
  });
  new MutationObserver(function () {
    if (follow === null) return;
    if (Date.now() > follow.until) {
      follow = null;
      return;
    }
    const target = cards().find(function (c) {
      return c.getAttribute("data-burst") === follow.burst;
    });
    if (target && document.activeElement !== target) target.focus();
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
