// Build dashboard/assets/plotly-uncia.min.js: `npm ci && node build.mjs OUT` (see README.md here).
import { build } from 'esbuild';
import { environmentPlugin } from 'esbuild-plugin-environment';
import InlineCSSPlugin from 'esbuild-plugin-inline-css';
import { readFileSync } from 'node:fs';

const version = JSON.parse(readFileSync('node_modules/plotly.js/package.json', 'utf8')).version;
await build({
    entryPoints: ['index.js'],
    outfile: process.argv[2],
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    legalComments: 'none',
    banner: {
        js: `/* plotly.js v${version} (MIT, Copyright 2012-2026 Plotly, Inc.) with bar, ` +
            `choroplethmap and scattermap only: built by tools/plotly-bundle for Uncia */`,
    },
    plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
    alias: { stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2016',
    logLevel: 'warning',
});
