// The selected hexagon's outline, drawn straight on the map's MapLibre canvas as a line layer
// of its own. Drawing it as a Plotly trace made every click re-run Plotly on the whole map (its
// calc and every hexagon's GeoJSON sent again to MapLibre): 150-450 ms of the browser's main
// thread per click here, more than the rest of the map's part of a click. The ring comes from
// the hexagon's own polygon in the map's data (the server draws the same polygons).
// window.unciaOutline(cell) (a clientside callback of pages/hotspots.py calls it) sets the
// selection; a check every 300 ms draws it again after Plotly rebuilt the map (a new style,
// a new set of hexagons). The map element carries data-selected-hexagon: the cell outlined.
(function () {
  "use strict";
  const LAYER = "uncia-selected-hexagon";
  let selected = null;

  function mapOf(graph) {
    const layout = graph._fullLayout;
    return layout && layout.map && layout.map._subplot && layout.map._subplot.map;
  }

  function ringOf(graph, cell) {
    const data = graph.data || [];
    for (let i = 0; i < data.length; i++) {
      const features = (data[i].geojson && data[i].geojson.features) || [];
      for (let j = 0; j < features.length; j++) {
        if (features[j].id === cell) return features[j].geometry.coordinates[0];
      }
    }
    return null;
  }

  function draw(graph) {
    const map = mapOf(graph);
    if (!map || !map.isStyleLoaded()) return;
    const ring = typeof selected === "string" ? ringOf(graph, selected) : null;
    const shown = ring ? selected : "";
    const source = map.getSource(LAYER);
    if (source && graph.getAttribute("data-selected-hexagon") === shown
        && graph._unciaOutlineData === graph.data) {
      const layers = map.getStyle().layers;
      if (layers[layers.length - 1].id !== LAYER) map.moveLayer(LAYER); // stay on top
      return;
    }
    const feature = ring
      ? { type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: ring } }
      : { type: "FeatureCollection", features: [] };
    if (source) source.setData(feature);
    else {
      map.addSource(LAYER, { type: "geojson", data: feature });
      map.addLayer({ id: LAYER, type: "line", source: LAYER,
                     paint: { "line-color": "#0b4f8a", "line-width": 3.5 } });
    }
    graph._unciaOutlineData = graph.data;
    graph.setAttribute("data-selected-hexagon", shown);
  }

  function drawAll() {
    document.querySelectorAll("#hotspot-map .js-plotly-plot").forEach(draw);
  }

  window.unciaOutline = function (cell) {
    selected = typeof cell === "string" ? cell : null;
    drawAll();
  };
  setInterval(drawAll, 300);
})();
