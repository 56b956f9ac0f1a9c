"""The validation report: every violation found in one pass, rendered as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


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


def summarise_failures(cases: pd.DataFrame) -> list[dict[str, str]]:
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


def ensure_valid(report: ValidationReport, dataset: str) -> None:
    """Raise with the whole report when validation failed.

    Args:
        report: the result of :func:`~slipway.data.checks.validate_with_spec`.
        dataset: how the report names the data, e.g. ``penguins v1@8cd7b2be``.

    Raises:
        DatasetValidationError: the message counts the violations; ``.report`` lists them.
    """
    from slipway.errors import DatasetValidationError

    if not report.passed:
        kinds = sorted({v["check"] for v in report.violations})
        raise DatasetValidationError(
            f"dataset {dataset} failed validation with {len(report.violations)} violation(s) "
            f"({', '.join(kinds)}); fix the data (or the spec) and push a new DVC version",
            report=report.to_markdown(dataset),
        )
