'use strict';
// plotly.js with the trace types the Uncia dashboard draws (dashboard/figures.py TRACE_TYPES).
var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/choroplethmap'),
    require('plotly.js/lib/scattermap'),
]);

module.exports = Plotly;
