"""Uncia's offline pipeline: camera-trap frames in, leopard detections keyed by location out.

`stages/` holds one module per stage (discover → decode → embed → classify → bursts, then
localize and identify), `store/` what lives on disk, `training/` the trained head and its
evaluation, `runs/` the orchestrators that chain stages over a store (`runs.runner`); `schema`
defines every table. The command line (`cli/`) sits on top.
"""

__version__ = "0.1.0"
