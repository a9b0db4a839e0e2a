"""The dashboard's data layer: every SQL statement the dashboard runs, over one store handle
(`store.Store`) that owns the data folder's paths, snapshots, connections and caches.
"""
