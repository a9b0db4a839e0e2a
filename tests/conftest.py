"""Process-wide test setup. Loaded by pytest before any test module, so before torch."""

import os

# The same setting `uncia` (cli/main.py) and `python -m bench` make before torch loads:
# idle OpenMP threads sleep instead of spinning. libgomp reads it once, when torch loads it, so
# the in-process CLI tests get it only if it is set here, before the first test module imports
# torch. Without it, Grad-CAM on a busy 2-core machine measured 2.7 s a frame instead of 0.09 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
