"""The dashboard's page: `hotspots` builds the layout, `callbacks` wires it to the store."""
