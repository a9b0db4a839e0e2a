"""The field's formats in and out: Camtrap DP packages, MegaDetector batch output, Timelapse
labels, COCO Camera Traps, occupancy detection histories and SECR capture histories
(docs/interop.md). A layer above the store: it reads and writes stores, never runs a model.
"""
