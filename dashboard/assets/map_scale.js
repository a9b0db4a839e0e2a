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

  function redraw(graph, map, bar) {
    const container = map.getContainer();
    const x = Math.max(0, container.clientWidth - MAX_PX - MARGIN_PX);
    bar.root.style.left = x + "px";
    // On a narrow map the legend reaches the right corner: the bar then goes below it.
    let top = MARGIN_PX;
    const legend = graph.querySelector("g.legend");
    if (legend) {
      const box = container.getBoundingClientRect();
      const drawn = legend.getBoundingClientRect();
      if (drawn.width && drawn.right - box.left > x) top = drawn.bottom - box.top + 6;
    }
    bar.root.style.top = top + "px";
    // Measured along the ruler's own bottom edge: the scale of a Mercator map changes with
    // latitude, so it holds where it is drawn.
    const y = bar.root.offsetTop + bar.ruler.offsetTop + bar.ruler.offsetHeight;
    const left = map.unproject([x, y]);
    const right = map.unproject([x + MAX_PX, y]);
    const span = haversineMetres(left, right);
    if (!(span > 0)) return;
    const metres = roundLength(span);
    bar.ruler.style.width = (MAX_PX * metres / span).toFixed(2) + "px";
    bar.label.textContent = metres >= 1000 ? metres / 1000 + " km" : metres + " m";
    bar.root.dataset.metres = String(metres);
  }

  function attach(graph) {
    const layout = graph._fullLayout;
    const map = layout && layout.map && layout.map._subplot && layout.map._subplot.map;
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
    const bar = { root: root, ruler: ruler, label: label };
    map._unciaScaleBar = bar;
    const update = function () {
      redraw(graph, map, bar);
      root.setAttribute("aria-label", "scale: " + label.textContent);
    };
    map.on("move", update);
    map.on("resize", update);
    map.on("load", update);
    if (graph.on) graph.on("plotly_afterplot", update); // a new legend may reach the corner
    update();
  }

  // Maps are created (and re-created) by Dash's renders; look for new ones twice a second.
  setInterval(function () {
    document.querySelectorAll(".js-plotly-plot").forEach(attach);
  }, 500);
})();
