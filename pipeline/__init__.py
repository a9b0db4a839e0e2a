"""Uncia's offline pipeline: camera-trap frames in, leopard detections keyed by location out.

Stages, one module each: discover → decode → embed → classify → bursts → store. `runner` chains
them; `cli` is the thin command-line wrapper; `schema` defines every table.
"""

__version__ = "0.1.0"
