"""The dashboard process (`uncia serve`) never loads torch: it runs no model."""

from __future__ import annotations

import subprocess
import sys


def test_serving_the_dashboard_does_not_import_torch() -> None:
    code = (
        "import sys, cli.main, dashboard.app; "
        "print(sorted(m for m in ('torch', 'torchvision', 'pipeline.stages.embed') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
