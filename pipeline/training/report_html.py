"""The evaluation report for people: one self-contained HTML page (the PR-curve PNG embedded as
base64, no external files or scripts) and the PR-curve picture itself, drawn with matplotlib."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib
from matplotlib.figure import Figure

_CURVES = (
    ("frame", "frames", "-"),
    ("burst_max", "bursts, max", "--"),
    ("burst_mean", "bursts, mean", ":"),
    ("burst_noisy_or", "bursts, noisy-or", "-."),
)


def pr_curve_png(report: dict[str, Any]) -> bytes:
    """Precision against recall for frames and for each burst aggregation, with the operating
    point at the report's threshold marked; PNG bytes."""
    matplotlib.use("Agg")  # no display: never open a window, whatever the environment says

    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.subplots()
    for key, label, style in _CURVES:
        curve = report["pr_curves"].get(key) or {}
        if curve.get("recall"):
            axes.step(
                curve["recall"], curve["precision"], where="post", linestyle=style, label=label
            )
    frame = report["frame"]
    if frame["recall"] is not None and frame["precision"] is not None:
        axes.plot(
            [frame["recall"]],
            [frame["precision"]],
            "o",
            color="black",
            label=f"threshold {report['threshold']:.3f} (frames)",
        )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(f"{report['model']['name']}: precision-recall")
    axes.legend(loc="lower left", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _row(cells: list[Any], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{_num(c)}</{tag}>" for c in cells) + "</tr>"


_METRIC_HEAD = ["", "n", "positives", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "AP"]


def _metric_cells(name: str, block: dict[str, Any]) -> list[Any]:
    c = block["confusion"]
    return [
        name,
        block["n"],
        block["positives"],
        c["tp"],
        c["fp"],
        c["fn"],
        c["tn"],
        block["precision"],
        block["recall"],
        block["f1"],
        block["average_precision"],
    ]


def render_report(report: dict[str, Any], png: bytes) -> str:
    """The report as one HTML page with the PR curve embedded."""
    model, data, review = report["model"], report["data"], report["review"]
    summary_rows = [_row(_METRIC_HEAD, header=True), _row(_metric_cells("frames", report["frame"]))]
    summary_rows += [
        _row(_metric_cells(f"bursts ({name})", block)) for name, block in report["burst"].items()
    ]
    deployment_rows = [_row(["deployment", *_METRIC_HEAD[1:]], header=True)]
    deployment_rows += [_row(_metric_cells(d["deployment"], d)) for d in report["per_deployment"]]
    label_rows = [_row(["label", "frames", "flagged"], header=True)]
    label_rows += [_row([k, v["frames"], v["flagged"]]) for k, v in report["per_label"].items()]
    c = report["frame"]["confusion"]
    confusion = (
        "<table><tr><th></th><th>flagged</th><th>not flagged</th></tr>"
        f"<tr><th>positive</th><td>{c['tp']}</td><td>{c['fn']}</td></tr>"
        f"<tr><th>negative</th><td>{c['fp']}</td><td>{c['tn']}</td></tr></table>"
    )
    fl, bl = review["frame_level"], review["burst_level_max"]
    warning = ""
    if data.get("seen_in_training"):
        warning = (
            f"<p class='warn'>{data['seen_in_training']} of these frames were used to train "
            "this model: the figures below are optimistic.</p>"
        )
    class_table = ""
    if "class_confusion" in report:
        cc = report["class_confusion"]
        rows = [_row(["label \\ predicted", *cc["classes"]], header=True)]
        rows += [
            _row([label, *counts]) for label, counts in zip(cc["labels"], cc["matrix"], strict=True)
        ]
        class_table = (
            "<h2>Classes (label × predicted class)</h2><table>" + "".join(rows) + "</table>"
        )
    views_table = _views_table(report.get("compare_views"))
    image = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Uncia evaluation: {html.escape(model["name"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.warn {{ background: #fff3cd; padding: 0.5em; border: 1px solid #e0c060; }}
</style></head><body>
<h1>Evaluation of {html.escape(model["name"])}</h1>
<p>{html.escape(model["kind"])} model on {html.escape(model["backbone"])} (weights
{html.escape(model["weights_sha256"][:12])}); positive labels:
{html.escape(", ".join(model["positive_labels"]))}; threshold {_num(report["threshold"], 4)}
{"; test-time flip averaging" if model.get("tta_flip") else ""}.
{data["frames"]} frames scored ({data["skipped"]} skipped) in {data["deployments"]} deployments
and {data["bursts"]} bursts.</p>
{warning}
<h2>Summary</h2>
<table>{"".join(summary_rows)}</table>
<h2>Review work at this threshold</h2>
<p>Frame by frame: open {fl["to_open"]} of {review["frames"]} frames
({_num(fl["open_fraction"])}), saving {_num(fl["saved_fraction"])} of the work, missing
{fl["positives_missed"]} positive frame(s). Burst by burst (max): open the
{bl["to_open"]} frames of flagged bursts ({_num(bl["open_fraction"])}), missing
{bl["positives_missed"]} positive burst(s).</p>
{views_table}
<h2>Confusion matrix (frames)</h2>
{confusion}
<h2>Precision-recall curve</h2>
<img alt="precision-recall curve" src="data:image/png;base64,{image}">
<h2>Per deployment (frames)</h2>
<table>{"".join(deployment_rows)}</table>
<h2>Per label (frames)</h2>
<table>{"".join(label_rows)}</table>
{class_table}
<p>Machine-readable figures: report.json; per-frame scores: frames.parquet.</p>
</body></html>
"""


def _views_table(compare: dict[str, Any] | None) -> str:
    """Whole frame, tiles and tiles+motion side by side (`uncia evaluate --compare-views`)."""
    if not compare:
        return ""
    head = [
        "views",
        "threshold",
        "frames AP",
        "recall",
        "recall at 1% FP",
        "visits AP",
        "recall",
        "recall at 1% FP",
        "best view of positive frames",
    ]
    rows = [_row(head, header=True)]
    for mode, block in compare.items():
        f, v = block["frame"], block["visit"]
        best = ", ".join(f"{k} {n}" for k, n in block["best_view_of_positives"].items())
        rows.append(
            _row(
                [
                    mode,
                    block["threshold"],
                    f["average_precision"],
                    f["recall"],
                    f["recall_at_1pct_fp"],
                    v["average_precision"],
                    v["recall"],
                    v["recall_at_1pct_fp"],
                    best,
                ]
            )
        )
    return (
        "<h2>Views side by side</h2><p>Each frame scores its best view; a visit (burst, or a "
        "deployment of frames without capture time) scores its best frame.</p><table>"
        + "".join(rows)
        + "</table>"
    )
