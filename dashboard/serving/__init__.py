"""Serving: the HTTP server and its worker processes, authentication, thumbnails, and the
caches and warm-up that keep answers ready.
"""
