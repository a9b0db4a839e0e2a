"""The occupancy detection history and the SECR capture history as downloads: the files
`uncia export occupancy` / `uncia export secr` write, byte for byte, zipped with a
`provenance.csv` that says which view they come from (filters, threshold, model, simulated).
"""

from __future__ import annotations

import csv
import io
import zipfile


def provenance_csv(provenance: dict[str, str]) -> str:
    """`key,value` rows, one per provenance item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "value"])
    writer.writerows(provenance.items())
    return out.getvalue()


def history_zip(files: dict[str, str], provenance: dict[str, str]) -> bytes:
    """A zip of `files` (name -> text, as the CLI writes them) and provenance.csv; the zip's
    comment repeats the view in one line."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("provenance.csv", provenance_csv(provenance))
        archive.comment = "; ".join(f"{k}: {v}" for k, v in provenance.items()).encode()[:65535]
    return out.getvalue()
