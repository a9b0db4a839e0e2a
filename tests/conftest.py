"""Process-wide test setup. Loaded by pytest before any test module, so before torch."""

import os
import tempfile

# The same setting `uncia` (pipeline/cli.py) and `python -m bench` make before torch loads:
# idle OpenMP threads sleep instead of spinning. libgomp reads it once, when torch loads it, so
# the in-process CLI tests get it only if it is set here, before the first test module imports
# torch. Without it, Grad-CAM on a busy 2-core machine measured 2.7 s a frame instead of 0.09 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# `uncia run` keeps OpenVINO's converted models in a cache; the suite's goes to one folder of
# the machine's temporary directory (converted once, reused by later runs), not the home folder.
os.environ.setdefault(
    "UNCIA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "uncia-test-cache")
)
