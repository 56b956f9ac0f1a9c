"""The KPI catalog: one YAML file from which every alert rule, alarm and dashboard is generated.

``monitoring/kpis.yaml`` lists each KPI once, with its PromQL value, its threshold and the
CloudWatch metric (or metric-math expression) that mirrors it. :func:`load_kpi_catalog` parses
it strictly (unknown keys are errors) and reports every problem with the KPI name and the field,
so that a typo fails in review instead of producing an alarm that never fires.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slipway.errors import KpiCatalogError

Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
TreatMissingData = Literal["breaching", "notBreaching", "ignore", "missing"]
Statistic = Literal["SampleCount", "Average", "Sum", "Minimum", "Maximum"]

#: The PromQL operator that matches each CloudWatch comparison operator.
PROMQL_OPERATORS: dict[str, str] = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}

#: CloudWatch namespace of the KPI metrics (agent, mirror and alarms default to it).
CLOUDWATCH_NAMESPACE = "Slipway"

#: Histograms of the model server. The CloudWatch agent drops histogram samples, so the
#: CloudWatch metrics derived from these come from ``slipway mirror`` (see docs/metrics.md).
HISTOGRAM_METRICS = frozenset({"slipway_http_request_duration_seconds", "slipway_prediction_score"})

_PROM_DURATION = re.compile(r"^(?:0|(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?)$")
_EXTENDED_STATISTIC = re.compile(r"^p(?:100|\d{1,2})(?:\.\d{1,2})?$")
_NAME = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
#: Categories in the order rule groups and dashboards show them.
CATEGORIES = ("service", "model", "pipeline", "machine")
#: Recorded series: the mirror's /federate selector matches ``slipway_.*`` (colons, the usual
#: recording-rule separator, are not used so that the names are valid CloudWatch metric names
#: as they are), and a name must not end like a counter or histogram sample, or the mirror
#: would type the federated (untyped) series as one.
_RECORD = re.compile(r"^slipway_[a-z0-9_]*[a-z0-9]$")
_COUNTER_LIKE = re.compile(r"_(total|bucket|count|sum|created)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PrometheusSpec(_Strict):
    """How Prometheus computes the KPI: ``expr`` is the *value*; the generator adds the test."""

    expr: str = Field(min_length=1, description="PromQL giving the KPI value.")
    for_: str = Field(alias="for", description="How long the condition must hold, e.g. 5m.")

    @field_validator("for_")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not _PROM_DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration; write e.g. 0s, 5m or 1h30m")
        return value


def _check_statistic(statistic: str | None, extended: str | None) -> None:
    if (statistic is None) == (extended is None):
        raise ValueError(
            "set exactly one of statistic (Average, Sum...) or extended_statistic (p95)"
        )
    if extended is not None and not _EXTENDED_STATISTIC.match(extended):
        raise ValueError(f"extended_statistic {extended!r} is not a percentile; write e.g. p95")


class MetricQuery(_Strict):
    """One CloudWatch metric used inside a metric-math ``expression``."""

    metric_name: str = Field(min_length=1)
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = Field(description="Average, Sum, Maximum, p95...")

    @field_validator("stat")
    @classmethod
    def _stat(cls, value: str) -> str:
        if value not in Statistic.__args__ and not _EXTENDED_STATISTIC.match(value):
            raise ValueError(f"stat {value!r} is neither a statistic nor a percentile like p95")
        return value


class CloudWatchSpec(_Strict):
    """The CloudWatch side: one metric with a statistic, or a metric-math expression."""

    namespace: str = CLOUDWATCH_NAMESPACE
    period: int = Field(description="Seconds: 10, 20, 30 or a multiple of 60.")
    metric_name: str | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: Statistic | None = None
    extended_statistic: str | None = None
    expression: str | None = Field(None, description="Metric math over the ids of `metrics`.")
    metrics: dict[str, MetricQuery] = Field(default_factory=dict)

    @field_validator("period")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (10, 20, 30) and (value <= 0 or value % 60):
            raise ValueError(f"period {value} must be 10, 20, 30 or a multiple of 60 seconds")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> CloudWatchSpec:
        if self.expression is None:
            if self.metric_name is None:
                raise ValueError("set metric_name (one metric) or expression + metrics (math)")
            if self.metrics:
                raise ValueError("metrics are only used with expression")
            _check_statistic(self.statistic, self.extended_statistic)
            return self
        if self.metric_name or self.dimensions or self.statistic or self.extended_statistic:
            raise ValueError(
                "with expression, put metric_name/dimensions/stat inside metrics, not beside it"
            )
        if not self.metrics:
            raise ValueError("expression needs at least one entry in metrics")
        if len(self.metrics) > 10:
            raise ValueError(f"an alarm allows 10 metrics, got {len(self.metrics)}")
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.expression))
        for query_id in self.metrics:
            if not re.match(r"^[a-z][a-zA-Z0-9_]*$", query_id):
                raise ValueError(f"metric id {query_id!r} must start with a lowercase letter")
            if query_id not in words:
                raise ValueError(f"metric id {query_id!r} is not used in the expression")
        return self

    def metric_names(self) -> list[str]:
        """Every CloudWatch metric name this spec reads."""
        if self.metric_name is not None:
            return [self.metric_name]
        return [query.metric_name for query in self.metrics.values()]


class RecordingRule(_Strict):
    """A Prometheus recording rule the KPIs build on (a join or a per-pod ratio).

    The mirror reads Prometheus through ``/federate``, which returns stored series only: a value
    that needs a join (``kube_pod_labels``) or a ratio of two sources is recorded here first,
    and the KPI's CloudWatch side reads the mirrored recorded series.
    """

    record: str = Field(description="Name of the recorded series, slipway_...")
    expr: str = Field(min_length=1)

    @field_validator("record")
    @classmethod
    def _record_name(cls, value: str) -> str:
        if not _RECORD.match(value):
            raise ValueError(
                f"record {value!r} must match slipway_[a-z0-9_]+ (the mirror federates "
                "slipway_.* and CloudWatch publishes the name as it is)"
            )
        if _COUNTER_LIKE.search(value):
            raise ValueError(
                f"record {value!r} ends like a counter or histogram sample; the mirror would "
                "treat the recorded gauge as a counter: rename it (e.g. ..._15m, ..._ratio)"
            )
        return value


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``15s``, ``2m`` or ``1h30m``."""
    if not text or not _PROM_DURATION.match(text):
        raise ValueError(f"{text!r} is not a Prometheus duration; write e.g. 15s, 2m or 1h30m")
    units = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([ywdhms])", text)))


class GuardCheck(_Strict):
    """How ``slipway guard`` checks a rollback KPI during a bake window.

    The KPI's own ``prometheus.expr`` looks at 5 minutes to an hour, far too slow to react within
    a minute of a bad deploy; ``expr`` is a short-window variant that returns one series per
    served version (label ``version``). A check fails when ``value <comparison> threshold``
    (the KPI's threshold and comparison); ``consecutive`` failing checks roll the version back.
    """

    expr: str = Field(min_length=1, description="PromQL, one series per `version` label.")
    consecutive: int = Field(ge=1, le=60, description="Failing checks in a row that roll back.")

    @field_validator("expr")
    @classmethod
    def _per_version(cls, value: str) -> str:
        if not re.search(r"\bversion\b", value):
            raise ValueError(
                "guard.expr must return one series per served version: aggregate "
                "`by (version)` (join slipway_model_info on (job, instance) for series "
                "without a version label)"
            )
        return value


class GuardDefaults(_Strict):
    """The bake window of ``slipway guard``, for every rollback KPI.

    Attributes:
        bake_window: How long a new pod-template revision is watched; a window that passes
            tags the registry version ``verified``.
        interval: Time between two checks.
        grace_period: How long a KPI without data for the new version is not counted; after
            it, missing data while the version receives traffic is a failing check.
        traffic: PromQL of the inference requests per second, one series per version: a
            version that never has traffic in its window is reported, not rolled back.
    """

    bake_window: str = "10m"
    interval: str = "15s"
    grace_period: str = "2m"
    traffic: str = Field(min_length=1)

    @field_validator("bake_window", "interval", "grace_period")
    @classmethod
    def _duration(cls, value: str) -> str:
        if duration_seconds(value) <= 0:
            raise ValueError(f"{value!r} must be a positive duration, e.g. 15s or 10m")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> GuardDefaults:
        interval, grace = duration_seconds(self.interval), duration_seconds(self.grace_period)
        window = duration_seconds(self.bake_window)
        if not interval < window or not grace < window:
            raise ValueError(
                f"interval ({self.interval}) and grace_period ({self.grace_period}) must be "
                f"shorter than bake_window ({self.bake_window})"
            )
        return self


class Kpi(_Strict):
    """One KPI: a value, a threshold, and how both Prometheus and CloudWatch watch it."""

    name: Annotated[str, Field(pattern=_NAME, max_length=48)]
    description: str = Field(min_length=10)
    summary: str = Field(min_length=3, description="One line shown in the alert title.")
    severity: Literal["page", "ticket"]
    category: Literal["service", "model", "pipeline", "machine"]
    unit: Literal["seconds", "ratio", "number"] = "number"
    prometheus: PrometheusSpec
    threshold: float
    comparison: Comparison
    cloudwatch: CloudWatchSpec
    evaluation_periods: int = Field(ge=1)
    datapoints_to_alarm: int = Field(ge=1)
    treat_missing_data: TreatMissingData
    rollback: bool
    runbook: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Anchor in docs/kpis.md.")
    guard: GuardCheck | None = Field(None, description="How `slipway guard` checks it.")

    @model_validator(mode="after")
    def _consistent(self) -> Kpi:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({self.datapoints_to_alarm}) must be <= "
                f"evaluation_periods ({self.evaluation_periods})"
            )
        if self.evaluation_periods * self.cloudwatch.period > 86400:
            raise ValueError(
                f"evaluation_periods x period = {self.evaluation_periods * self.cloudwatch.period}"
                " s exceeds CloudWatch's one-day limit (86400 s)"
            )
        if self.rollback and self.treat_missing_data != "breaching":
            raise ValueError(
                f"treat_missing_data is {self.treat_missing_data!r} but rollback is true: a KPI "
                "that triggers a rollback must treat missing data as 'breaching'"
            )
        if self.guard is not None and not self.rollback:
            raise ValueError(
                "a guard block needs rollback: true (the guard only watches rollback KPIs); "
                "set rollback: true or remove the guard block"
            )
        return self

    @property
    def alert_name(self) -> str:
        """Prometheus alert name, e.g. ``http-5xx-ratio`` -> ``SlipwayHttp5xxRatio``."""
        return "Slipway" + "".join(part[:1].upper() + part[1:] for part in self.name.split("-"))

    @property
    def alarm_name(self) -> str:
        """CloudWatch alarm name, e.g. ``slipway-http-5xx-ratio``."""
        return f"slipway-{self.name}"


class KpiCatalog(_Strict):
    """The whole catalog file."""

    version: Literal[1]
    runbook_base_url: str = Field(
        min_length=1, description="Where docs/kpis.md is read; anchors are appended."
    )
    recording_rules: list[RecordingRule] = Field(default_factory=list)
    guard: GuardDefaults | None = Field(None, description="The bake window of slipway guard.")
    kpis: list[Kpi] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> KpiCatalog:
        seen: set[str] = set()
        for kpi in self.kpis:
            if kpi.name in seen:
                raise ValueError(f"KPI name {kpi.name!r} appears twice; names must be unique")
            seen.add(kpi.name)
        records: set[str] = set()
        for rule in self.recording_rules:
            if rule.record in records:
                raise ValueError(
                    f"recording rule {rule.record!r} appears twice; each series is recorded once"
                )
            records.add(rule.record)
        if self.guard is None and any(kpi.guard for kpi in self.kpis):
            raise ValueError(
                "KPIs have guard blocks but the catalog has no top-level guard block "
                "(bake_window, interval, grace_period, traffic): add one"
            )
        return self

    def recorded_metrics(self) -> frozenset[str]:
        """Names of the series the catalog's recording rules write.

        They exist in Prometheus only, so the CloudWatch agent, which scrapes the exporters,
        cannot publish them; the mirror federates them.
        """
        return frozenset(rule.record for rule in self.recording_rules)

    def runbook_url(self, kpi: Kpi) -> str:
        """The URL of the KPI's runbook section: the catalog's base URL plus its anchor."""
        return f"{self.runbook_base_url}#{kpi.runbook}"

    def get(self, name: str) -> Kpi:
        """The KPI named ``name``.

        Raises:
            KeyError: the catalog has no KPI of that name; the message lists the known ones.
        """
        for kpi in self.kpis:
            if kpi.name == name:
                return kpi
        raise KeyError(f"no KPI named {name!r}; known: {', '.join(k.name for k in self.kpis)}")


def guard_catalog(catalog: KpiCatalog) -> dict[str, Any]:
    """The part of the catalog ``slipway guard`` reads, as catalog data (a valid catalog itself).

    The top-level ``guard`` block and the ``rollback: true`` KPIs, without recording rules: the
    guard pod reads it from the ConfigMap ``slipway-guard-catalog`` (the image carries no
    ``monitoring/kpis.yaml``).
    """
    data = catalog.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["recording_rules"] = []
    data["kpis"] = [kpi for kpi in data["kpis"] if kpi["rollback"]]
    return data


def parse_kpi_catalog(data: Any, source: str = "<catalog>") -> KpiCatalog:
    """Validate already-parsed catalog data.

    Args:
        data: the mapping read from the YAML file.
        source: the file name, used in error messages.

    Returns:
        The validated catalog.

    Raises:
        KpiCatalogError: one line per problem, naming the KPI and the field.
    """
    try:
        return KpiCatalog.model_validate(data)
    except ValidationError as e:
        raise KpiCatalogError(
            f"{source}: invalid KPI catalog:\n"
            + "\n".join(_describe(err, data) for err in e.errors())
        ) from e


def load_kpi_catalog(path: Path | str) -> KpiCatalog:
    """Read and validate ``monitoring/kpis.yaml``.

    Args:
        path: the catalog file.

    Returns:
        The validated catalog.

    Raises:
        KpiCatalogError: the file is missing, is not YAML, or breaks the schema.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise KpiCatalogError(
            f"KPI catalog {path} does not exist; create it or fix the path"
        ) from e
    except yaml.YAMLError as e:
        raise KpiCatalogError(f"KPI catalog {path} is not valid YAML: {e}") from e
    return parse_kpi_catalog(data, str(path))


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a Markdown text."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not in_code:
            text = re.sub(r"[`*_]", "", match.group(1)).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def check_runbook_anchors(catalog: KpiCatalog, markdown: str) -> None:
    """Fail when a KPI's runbook anchor is not a heading of ``docs/kpis.md``.

    Raises:
        KpiCatalogError: names each KPI whose anchor is missing.
    """
    anchors = heading_anchors(markdown)
    missing = [
        f"{kpi.name} -> #{kpi.runbook}" for kpi in catalog.kpis if kpi.runbook not in anchors
    ]
    if missing:
        raise KpiCatalogError(
            "runbook anchors with no matching heading in docs/kpis.md: "
            + ", ".join(missing)
            + "; add the heading or fix the KPI's runbook field"
        )


def _describe(err: Any, data: Any) -> str:
    loc = list(err["loc"])
    where = "catalog"
    if len(loc) >= 2 and loc[0] == "kpis" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(data, dict) and isinstance(data.get("kpis"), list):
            entries = data["kpis"]
            if index < len(entries) and isinstance(entries[index], dict):
                name = entries[index].get("name")
        where = f"KPI {name!r} (entry {index + 1})" if name else f"KPI entry {index + 1}"
        loc = loc[2:]
    field = ".".join("for" if part == "for_" else str(part) for part in loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    # our own checks (value_error) already quote the bad value in their message
    shown = (
        "" if err["type"] in ("missing", "value_error") else f" (got {_short(err.get('input'))})"
    )
    return f"  {where}{', field ' + field if field else ''}: {message}{shown}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
