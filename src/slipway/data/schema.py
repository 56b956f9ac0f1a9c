"""The dataset contract: a pandera schema validated lazily, and a report of every violation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from slipway.data.table import TARGET
from slipway.errors import DatasetValidationError

# The 30 measurements of the Wisconsin breast-cancer data (mean, error and worst of each).
_MEASURES = [
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
]
FEATURES: tuple[str, ...] = tuple(
    [f"mean_{m}" for m in _MEASURES]
    + [f"{m}_error" for m in _MEASURES]
    + [f"worst_{m}" for m in _MEASURES]
)
LABELS = (0, 1)
# Physical measurements are non-negative; the upper bound catches unit mix-ups (areas are
# < 5,000 in the data, so 10x above that is a corrupt row, not a big tumour).
FEATURE_MAX = 50_000.0


@dataclass
class ValidationReport:
    """Every violation found in one lazy pass, and the row count."""

    rows: int
    violations: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the pass found no violation."""
        return not self.violations

    def to_markdown(self, dataset: str) -> str:
        """Render the report as a Markdown page (result line plus a table of violations).

        Args:
            dataset: name shown in the page title.
        """
        head = f"# Data validation: {dataset}\n\nRows: {self.rows}. "
        if self.passed:
            return head + "Result: **passed**, no violations.\n"
        lines = [
            head + f"Result: **failed**, {len(self.violations)} violation(s).\n",
            "| column | check | failure | rows |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {v['column']} | {v['check']} | {v['failure']} | {v['rows']} |"
            for v in self.violations
        ]
        return "\n".join(lines) + "\n"


def build_schema(target: str = TARGET, min_rows: int = 100, max_duplicate_rows: int = 0):
    """The pandera schema of a training dataset.

    Args:
        target: label column (1 = malignant, 0 = benign).
        min_rows: fewer rows than this fail validation.
        max_duplicate_rows: how many fully duplicated rows are tolerated.
    """
    import pandera.pandas as pa

    columns = {
        name: pa.Column(
            float,
            checks=[pa.Check.ge(0.0), pa.Check.le(FEATURE_MAX)],
            nullable=False,
            coerce=False,
        )
        for name in FEATURES
    }
    columns[target] = pa.Column(int, checks=pa.Check.isin(LABELS), nullable=False)
    return pa.DataFrameSchema(
        columns,
        strict=True,
        checks=[
            pa.Check(
                lambda df: len(df) >= min_rows,
                name=f"at_least_{min_rows}_rows",
                error=f"fewer than {min_rows} rows",
            ),
            pa.Check(
                lambda df: int(df.duplicated().sum()) <= max_duplicate_rows,
                name=f"at_most_{max_duplicate_rows}_duplicate_rows",
                error=f"more than {max_duplicate_rows} duplicated rows",
            ),
            pa.Check(
                lambda df: target in df and set(LABELS) <= set(df[target].dropna().tolist()),
                name="both_labels_present",
                error="a label class is missing",
            ),
        ],
    )


def validate_dataset(
    frame: pd.DataFrame, target: str = TARGET, min_rows: int = 100, max_duplicate_rows: int = 0
) -> ValidationReport:
    """Validate ``frame`` lazily, collecting every violation instead of stopping at the first."""
    import pandera.errors as pae

    schema = build_schema(target, min_rows, max_duplicate_rows)
    report = ValidationReport(rows=len(frame))
    try:
        schema.validate(frame, lazy=True)
    except pae.SchemaErrors as e:
        report.violations = _summarise(e.failure_cases)
    return report


def ensure_valid(report: ValidationReport, dataset: str) -> None:
    """Raise with the whole report when validation failed.

    Raises:
        DatasetValidationError: the message counts the violations; ``.report`` lists them.
    """
    if not report.passed:
        kinds = sorted({v["check"] for v in report.violations})
        raise DatasetValidationError(
            f"dataset {dataset} failed validation with {len(report.violations)} violation(s) "
            f"({', '.join(kinds)}); fix the data and push a new DVC version",
            report=report.to_markdown(dataset),
        )


def _summarise(cases: pd.DataFrame) -> list[dict[str, str]]:
    """One line per (column, check): the failing values (a few) and the row indexes (a few)."""
    out = []
    cases = cases.fillna({"column": "<dataframe>"})
    for (column, check), group in cases.groupby(["column", "check"], sort=True, dropna=False):
        values = [str(v) for v in group["failure_case"].tolist()[:3] if str(v) != "False"] or ["-"]
        index = [str(int(i)) for i in group["index"].dropna().tolist()[:5]]
        out.append(
            {
                "column": str(column),
                "check": str(check),
                "failure": ", ".join(values) + (" …" if len(group) > 3 else ""),
                "rows": (", ".join(index) + (" …" if len(group) > 5 else "")) or "-",
            }
        )
    return out
