// A scale bar on every map of the page. plotly.js does not expose MapLibre's scale control, so
// this draws one in the map's corner and redraws it whenever the map moves or zooms: the
// bar's two ends are turned back into longitude and latitude by the map itself, their
// great-circle (haversine) distance is measured, and the bar is cut to the largest round
// length (1, 2 or 5 times a power of ten) that fits in MAX_PX.
(function () {
  "use strict";
  const MAX_PX = 120;
  const MARGIN_PX = 10; // from the map's top right corner (the legend is top left and
  // MapLibre's attribution bottom right, and on a phone it spreads along the bottom)
  const EARTH_RADIUS_M = 6371008.8; // mean radius, as MapLibre measures

  function haversineMetres(a, b) {
    const rad = Math.PI / 180;
    const dLat = (b.lat - a.lat) * rad;
    const dLng = (b.lng - a.lng) * rad;
    const h = Math.sin(dLat / 2) ** 2 +
      Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
    return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  function roundLength(metres) {
    const power = Math.pow(10, Math.floor(Math.log10(metres)));
    for (const n of [5, 2, 1]) {
      if (n * power <= metres) return n * power;
    }
    return power;
  }

  function mapOf(graph) {
    const layout = graph._fullLayout;
    return layout && layout.map && layout.map._subplot && layout.map._subplot.map;
  }

  // Where the bar goes: the map's top right corner, or below the legend where a narrow map's
  // legend reaches that corner. Read from the page's layout, so only after a render or resize,
  // never on every frame of a move.
  function place(graph, map, bar) {
    const container = map.getContainer();
    bar.x = Math.max(0, container.clientWidth - MAX_PX - MARGIN_PX);
    let top = MARGIN_PX;
    const legend = graph.querySelector("g.legend");
    if (legend) {
      const box = container.getBoundingClientRect();
      const drawn = legend.getBoundingClientRect();
      if (drawn.width && drawn.right - box.left > bar.x) top = drawn.bottom - box.top + 6;
    }
    bar.root.style.left = bar.x + "px";
    bar.root.style.top = top + "px";
    // Measured along the ruler's own bottom edge: the scale of a Mercator map changes with
    // latitude, so it holds where it is drawn.
    bar.y = top + bar.ruler.offsetTop + bar.ruler.offsetHeight;
  }

  function redraw(map, bar) {
    const left = map.unproject([bar.x, bar.y]);
    const right = map.unproject([bar.x + MAX_PX, bar.y]);
    const span = haversineMetres(left, right);
    if (!(span > 0)) return;
    const metres = roundLength(span);
    bar.ruler.style.width = (MAX_PX * metres / span).toFixed(2) + "px";
    bar.label.textContent = metres >= 1000 ? metres / 1000 + " km" : metres + " m";
    bar.root.dataset.metres = String(metres);
    bar.root.setAttribute("aria-label", "scale: " + bar.label.textContent);
  }

  function attach(graph) {
    const map = mapOf(graph);
    if (!map || map._unciaScaleBar) return;
    const root = document.createElement("div");
    root.className = "map-scale";
    root.setAttribute("role", "img");
    const label = document.createElement("span");
    label.className = "map-scale-label";
    const ruler = document.createElement("div");
    ruler.className = "map-scale-ruler";
    // Inline, as plotly.js's own styles for the divs inside a graph override a class's border.
    ruler.style.cssText = "box-sizing: border-box; height: 7px; border: 2px solid #222; " +
      "border-top: none; background: rgba(255, 255, 255, 0.6);";
    root.append(label, ruler);
    map.getContainer().appendChild(root);
    const bar = { root: root, ruler: ruler, label: label, x: 0, y: 0 };
    bar.refresh = function () {
      place(graph, map, bar);
      redraw(map, bar);
    };
    map._unciaScaleBar = bar;
    map.on("move", function () { redraw(map, bar); });
    map.on("resize", bar.refresh);
    map.on("load", bar.refresh);
    // One listener per graph, for whichever map it holds now: a new legend may reach the corner.
    if (graph.on && !graph._unciaScaleListener) {
      graph._unciaScaleListener = true;
      graph.on("plotly_afterplot", function () {
        const current = mapOf(graph);
        if (current && current._unciaScaleBar) current._unciaScaleBar.refresh();
      });
    }
    bar.refresh();
  }

  // Maps are created (and re-created) by Dash's renders; look for new ones twice a second.
  setInterval(function () {
    document.querySelectorAll(".js-plotly-plot").forEach(attach);
  }, 500);
})();
