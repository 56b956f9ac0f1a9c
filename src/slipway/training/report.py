"""The run report: one self-contained HTML page per pipeline run, rendered from its MLflow run.

The MLflow run is the report's one source: the evaluate step logs the holdout figures
(``figures/*.png``, :mod:`slipway.training.figures`) and the validation report
(``validation/report.md``) to it beside the metrics and decision tags it already writes; the
promote step adds the version code. Any step can then render the page from the run: evaluate
(decision, no version code yet), promote (with the version code) and ``slipway run`` (the copy
under ``<state_dir>/reports/<run-id>.html``). The page has inline CSS and the figures as
``data:`` URIs, so it opens from a file, an artifact store or the Kubeflow UI with no network.
"""

from __future__ import annotations

import base64
import html
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.config import Settings

FIGURES_DIR = "figures"
VALIDATION_ARTIFACT = "validation/report.md"
REPORT_ARTIFACT = "report.html"
#: The order figures appear in; others follow by name.
FIGURE_ORDER = (
    "roc.png",
    "precision_recall.png",
    "roc_ovr.png",
    "confusion_matrix.png",
    "predicted_vs_actual.png",
    "residuals.png",
)
_RESULT_LINE = re.compile(r"Rows: (\d+)\. Result: \*\*(\w+)\*\*,? ?([^\n]*)")


@dataclass(frozen=True)
class RunReport:
    """What the report shows about one run.

    Attributes:
        run_id: the MLflow run of the candidate.
        model_name: the registered model.
        dataset: the dataset version, e.g. ``v2@8cd7b2be (breast-cancer/v2.csv)``.
        validation: the validate-data report (Markdown); empty when not recorded.
        candidate: holdout metrics of the candidate, by name.
        champion: the champion's metrics on the same holdout; empty without a champion.
        champion_version: the champion's version code at evaluation (``None``: no champion).
        decision: ``promote`` or ``keep``; ``None`` before evaluation.
        reason: why, in words.
        version_code: the candidate's version code once promoted, else ``None``.
        registry_version: its registry version once promoted.
        holdout_rows: rows both models were scored on.
        figures: PNG bytes by file name, in display order.
    """

    run_id: str
    model_name: str
    dataset: str
    validation: str = ""
    candidate: Mapping[str, float] = field(default_factory=dict)
    champion: Mapping[str, float] = field(default_factory=dict)
    champion_version: str | None = None
    decision: str | None = None
    reason: str = ""
    version_code: str | None = None
    registry_version: str | None = None
    holdout_rows: int | None = None
    figures: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The decision in three words: ``promoted v3-…``, ``approved``, ``champion kept``."""
        if self.version_code:
            return f"PROMOTED as {self.version_code}"
        if self.decision == "promote":
            return "APPROVED for promotion"
        if self.decision == "keep":
            return "NOT PROMOTED: champion kept"
        return "NOT EVALUATED"

    @property
    def validation_summary(self) -> str:
        """``passed, no violations (569 rows)`` from the report's result line."""
        found = _RESULT_LINE.search(self.validation)
        if found is None:
            return "not recorded" if not self.validation.strip() else "see the report below"
        rows, result, rest = found.groups()
        return f"{result}{', ' + rest.rstrip('.') if rest else ''} ({rows} rows)"


def log_report_inputs(
    client: Any, run_id: str, figures: Mapping[str, bytes], validation: str | None
) -> None:
    """Log the figures (``figures/``) and the validation report to the run.

    Args:
        client: an ``MlflowClient`` (:func:`slipway.training.mlflow_client`).
        run_id: the candidate's run.
        figures: PNG bytes by file name (:func:`slipway.training.render_figures`).
        validation: the validate-data Markdown; ``None`` logs none.
    """
    with tempfile.TemporaryDirectory(prefix="slipway-report-") as tmp:
        folder = Path(tmp) / FIGURES_DIR
        folder.mkdir()
        for name, png in figures.items():
            (folder / name).write_bytes(png)
        client.log_artifacts(run_id, str(folder), FIGURES_DIR)
        if validation is not None:
            path = Path(tmp) / Path(VALIDATION_ARTIFACT).name
            path.write_text(validation)
            client.log_artifact(run_id, str(path), str(Path(VALIDATION_ARTIFACT).parent))


def load_run_report(tracking_uri: str, run_id: str) -> RunReport:
    """Read what the report shows from the MLflow run (tags, metrics, logged artifacts).

    Args:
        tracking_uri: MLflow tracking URI.
        run_id: the candidate's run.

    Returns:
        The report's content.
    """
    from slipway.training.tracking import mlflow_client

    client = mlflow_client(tracking_uri)
    run = client.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    with tempfile.TemporaryDirectory(prefix="slipway-report-") as tmp:
        names = {Path(a.path).name for a in client.list_artifacts(run_id, FIGURES_DIR)}
        figures = {}
        for name in sorted(names, key=_figure_rank):
            figures[name] = Path(
                client.download_artifacts(run_id, f"{FIGURES_DIR}/{name}", tmp)
            ).read_bytes()
        logged = {
            a.path for a in client.list_artifacts(run_id, str(Path(VALIDATION_ARTIFACT).parent))
        }
        validation = (
            Path(client.download_artifacts(run_id, VALIDATION_ARTIFACT, tmp)).read_text()
            if VALIDATION_ARTIFACT in logged
            else ""
        )
    champion_version = tags.get("slipway.champion_version")
    return RunReport(
        run_id=run_id,
        model_name=tags.get("slipway.model_name", ""),
        dataset=f"{tags.get('slipway.dataset_version', '?')}@{tags.get('slipway.dataset_md5', '')[:8]}"
        f" ({tags.get('slipway.dataset_path', 'unknown path')})",
        validation=validation,
        candidate=_prefixed(metrics, "holdout_"),
        champion=_prefixed(metrics, "champion_holdout_"),
        champion_version=None if champion_version in (None, "none") else champion_version,
        decision=tags.get("slipway.decision"),
        reason=tags.get("slipway.decision_reason", ""),
        version_code=tags.get("slipway.version_code")
        if tags.get("slipway.promoted") == "true"
        else None,
        registry_version=tags.get("slipway.registry_version"),
        holdout_rows=int(metrics["holdout_rows"]) if "holdout_rows" in metrics else None,
        figures=figures,
    )


def render_report(report: RunReport) -> str:
    """The report as one HTML page: inline CSS, figures as ``data:`` URIs, no external asset.

    Args:
        report: what to show (:func:`load_run_report`).

    Returns:
        The page's text.
    """
    e = html.escape
    state = "promoted" if report.version_code else (report.decision or "none")
    names = list(report.candidate) + [n for n in report.champion if n not in report.candidate]
    rows = "\n".join(
        f"<tr><th>{e(name)}</th><td>{_number(report.candidate.get(name))}</td>"
        f"<td>{_number(report.champion.get(name))}</td></tr>"
        for name in names
    )
    figures = "\n".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{e(name)}</figcaption></figure>'
        for name, png in report.figures.items()
    )
    promoted = (
        f'<p>Version code <code id="version-code">{e(report.version_code)}</code>'
        f" (registry version {e(report.registry_version or '?')})</p>"
        if report.version_code
        else ""
    )
    champion = e(report.champion_version or "none yet")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>slipway run {e(report.run_id)}: {e(report.headline)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{e(report.model_name)} training run <code>{e(report.run_id)}</code></h1>
<section class="decision {e(state)}" id="decision">
<h2>{e(report.headline)}</h2>
<p id="reason">{e(report.reason)}</p>
{promoted}</section>
<section><h2>Data</h2>
<p>Dataset <strong>{e(report.dataset)}</strong>; validation
<strong id="validation">{e(report.validation_summary)}</strong>; holdout
{e(str(report.holdout_rows) if report.holdout_rows is not None else "?")} rows.</p>
<details><summary>validation report</summary><pre>{e(report.validation)}</pre></details>
</section>
<section><h2>Holdout metrics</h2>
<table id="metrics"><thead><tr><th>metric</th><th>candidate</th>
<th>champion ({champion})</th></tr></thead>
<tbody>
{rows}
</tbody></table></section>
<section><h2>Figures</h2><div class="figures">
{figures or "<p>No figures were logged.</p>"}
</div></section>
</body></html>
"""


def write_report(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader never sees half a page, and a failed write leaves the previous file (or none).

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the page is for anyone to open
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_run_report(tracking_uri: str, run_id: str, path: Path, log: bool = False) -> Path:
    """Render the run's report from MLflow and write it to ``path`` (atomically).

    Args:
        tracking_uri: MLflow tracking URI.
        run_id: the candidate's run.
        path: the HTML file to write (a KFP ``HTML`` artifact's path, or the state folder's copy).
        log: also log the page to the run as ``report.html`` (replacing an earlier one).

    Returns:
        ``path``.
    """
    page = render_report(load_run_report(tracking_uri, run_id))
    write_report(page, path)
    if log:
        from slipway.training.tracking import mlflow_client

        # the artifact's own file name is the step's output name, e.g. "report"
        with tempfile.TemporaryDirectory(prefix="slipway-report-") as tmp:
            copy = write_report(page, Path(tmp) / REPORT_ARTIFACT)
            mlflow_client(tracking_uri).log_artifact(run_id, str(copy))
    return path


def validation_with_findings(validation: str, data_problem: str | None) -> str:
    """The validate-data report, with evaluate's finding about the data appended when there is one.

    validate-data runs before the champion is scored; a champion that collapses on this holdout
    (``Decision.data_problem``) points at the data all the same, so the report kept with the run
    (``validation/report.md``, and the run page's validation section) says so.
    """
    if not data_problem:
        return validation
    return (
        f"{validation.rstrip()}\n\n## Found by evaluate: likely a data problem\n\n{data_problem}\n"
    )


def report_evaluation(
    run_id: str, figures: Mapping[str, bytes], validation: str, settings: Settings, output: Path
) -> Path:
    """The evaluate step's report: figures and validation logged to the run, the page written.

    Call it after the evaluation's metrics and decision are on the run.

    Args:
        run_id: the candidate's MLflow run.
        figures: the holdout figures (:func:`slipway.training.holdout_figures`).
        validation: the validate-data report (Markdown).
        settings: the configuration (MLflow).
        output: where to write the page (the step's ``HTML`` artifact).

    Returns:
        ``output``.
    """
    from slipway.training.tracking import mlflow_client

    log_report_inputs(mlflow_client(settings.tracking_uri), run_id, figures, validation)
    return write_run_report(settings.tracking_uri, run_id, output, log=True)


def _prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {
        k.removeprefix(prefix): v
        for k, v in sorted(metrics.items())
        if k.startswith(prefix) and k != "holdout_rows"
    }


def _figure_rank(name: str) -> tuple[int, str]:
    return (FIGURE_ORDER.index(name) if name in FIGURE_ORDER else len(FIGURE_ORDER), name)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2933;background:#fff;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:.2rem 0 .6rem}
section{margin:1.2rem 0}
.decision{border-radius:8px;padding:1rem 1.4rem;border:2px solid}
.decision.promoted,.decision.promote{background:#e3f9e5;border-color:#31a24c;color:#0e4c1d}
.decision.keep{background:#fff4d6;border-color:#d99a00;color:#5c3d00}
.decision.none{background:#eef2f7;border-color:#9aa5b1}
table{border-collapse:collapse}th,td{padding:.3rem .9rem;border-bottom:1px solid #d9e2ec;
text-align:right}th:first-child{text-align:left}thead th{background:#f0f4f8}
.figures{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #d9e2ec;border-radius:6px;padding:.4rem;background:#fff}
figure img{display:block;width:500px;max-width:100%}figcaption{font-size:.8rem;color:#52606d}
pre{background:#f5f7fa;padding:.6rem;overflow-x:auto}code{font-size:.95em}
"""
