// The map fits its hexagons and cameras to the width it really has. The server picks the first
// zoom for a map about figures.MAP_WIDTH_PX wide; on a phone the map is half that, and that
// zoom left hexagons and cameras outside the view. A map narrower than that is fitted here to
// the data it draws, again whenever that data's extent (or the map's width) changes.
(function () {
  "use strict";
  const ASSUMED_WIDTH_PX = 680; // figures.MAP_WIDTH_PX
  // Only a map clearly narrower than that (a phone's, a narrow window's) is re-fitted; a
  // desktop map of 660 px keeps the server's view, which the user's pan and zoom then keep.
  const FIT_BELOW_PX = 0.8 * ASSUMED_WIDTH_PX;
  const PADDING_PX = 12;

  function extend(bounds, lng, lat) {
    if (typeof lng !== "number" || typeof lat !== "number") return;
    bounds[0] = Math.min(bounds[0], lng);
    bounds[1] = Math.min(bounds[1], lat);
    bounds[2] = Math.max(bounds[2], lng);
    bounds[3] = Math.max(bounds[3], lat);
  }

  function dataBounds(data) {
    const bounds = [Infinity, Infinity, -Infinity, -Infinity];
    (data || []).forEach(function (trace) {
      if (trace.type === "choroplethmap" && trace.geojson && trace.geojson.features) {
        trace.geojson.features.forEach(function (feature) {
          (feature.geometry.coordinates[0] || []).forEach(function (p) {
            extend(bounds, p[0], p[1]);
          });
        });
      } else if (trace.type === "scattermap" && trace.lon && trace.lat) {
        for (let i = 0; i < trace.lon.length; i++) extend(bounds, trace.lon[i], trace.lat[i]);
      }
    });
    return bounds[0] <= bounds[2] ? bounds : null;
  }

  function fit(graph) {
    const layout = graph._fullLayout;
    const map = layout && layout.map && layout.map._subplot && layout.map._subplot.map;
    if (!map || !map.loaded()) return;
    const width = map.getContainer().clientWidth;
    if (!width || width >= FIT_BELOW_PX) return;
    const bounds = dataBounds(graph.data);
    if (!bounds) return;
    const key = bounds.map(function (v) { return v.toFixed(4); }).join(",") + "@" + width;
    if (graph._unciaFitKey === key) return;
    graph._unciaFitKey = key;
    map.fitBounds([[bounds[0], bounds[1]], [bounds[2], bounds[3]]],
                  { padding: PADDING_PX, animate: false, maxZoom: 14 });
  }

  setInterval(function () {
    document.querySelectorAll("#hotspot-map .js-plotly-plot").forEach(fit);
  }, 400);
})();
