"""The dataset spec: what a dataset's rows are, committed beside its DVC pointers.

``data/<dataset>/dataset.yaml`` names the task, the target column and every feature with its
kind and constraints. Validation (:mod:`slipway.data.checks`) is generated from it, so a user's
own table needs a spec and a DVC version, no code. The models are strict: an unknown key, a
misspelt kind or a number written as text is refused with the field and the value named.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slipway.errors import DatasetSpecError

#: File name of a dataset's spec inside ``data/<dataset>/``.
SPEC_FILE = "dataset.yaml"

Task = Literal["binary", "multiclass", "regression"]
Kind = Literal["numeric", "integer", "categorical", "boolean"]
#: A class label or a category: YAML gives ints, strings or booleans.
Label = int | bool | str

#: Dataset names are folder names under ``data/`` and part of DVC paths.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: Registered model names (the same rule as ``Settings.model_name``).
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"

# the member names pydantic appends to a union field's error location
_UNION_TAG = re.compile(r"^(int|float|bool|str|list\[.*\])$")

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class FeatureSpec(BaseModel):
    """One input column: its kind, whether it may be empty, and its allowed values.

    Attributes:
        name: the column name in the file.
        kind: ``numeric`` (floats), ``integer``, ``categorical`` (a fixed set of values) or
            ``boolean`` (two values: true/false, 0/1, yes/no).
        nullable: whether empty cells are allowed.
        min: smallest allowed value (numeric and integer only).
        max: largest allowed value (numeric and integer only).
        categories: the allowed values (categorical only, required there).
    """

    model_config = _STRICT

    name: Annotated[str, Field(min_length=1)]
    kind: Kind
    nullable: bool = False
    min: int | float | None = None
    max: int | float | None = None
    categories: Annotated[list[Label], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _constraints_fit_the_kind(self) -> FeatureSpec:
        ranged = self.kind in ("numeric", "integer")
        if not ranged and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max apply to numeric and integer features, not {self.kind!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.kind == "categorical" and not self.categories:
            raise ValueError("a categorical feature needs its list of categories")
        if self.kind != "categorical" and self.categories is not None:
            raise ValueError(f"categories apply to categorical features, not {self.kind!r}")
        if self.categories is not None and len(set(map(repr, self.categories))) != len(
            self.categories
        ):
            raise ValueError("categories repeat a value")
        return self


class DatasetSpec(BaseModel):
    """What a dataset's rows are: task, target, features, ignored columns and row limits.

    Attributes:
        name: the dataset's name, its folder under ``data/``.
        task: ``binary``, ``multiclass`` or ``regression``.
        target: the label column.
        classes: the label values (classification only, required there; two for binary).
        positive_class: the class to detect (binary only, required there; one of ``classes``).
        features: the input columns, in file order.
        ignore: columns kept in the file but never used (ids, timestamps, free text).
        min_rows: fewer rows than this fail validation.
        max_duplicate_rows: how many fully duplicated rows (ignored columns aside) are tolerated.
        model_name: the registered model trained on this dataset; ``None`` = the rule of
            :func:`slipway.data.model_name_for` (``SLIPWAY_MODEL_NAME`` for breast-cancer,
            ``<SLIPWAY_MODEL_NAME>-<name>`` for any other dataset).
    """

    model_config = _STRICT

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    task: Task
    target: Annotated[str, Field(min_length=1)]
    classes: Annotated[list[Label], Field(min_length=2)] | None = None
    positive_class: Label | None = None
    features: Annotated[list[FeatureSpec], Field(min_length=1)]
    ignore: list[str] = Field(default_factory=list)
    min_rows: Annotated[int, Field(ge=1)] = 100
    max_duplicate_rows: Annotated[int, Field(ge=0)] = 0
    model_name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"features repeat the column(s) {', '.join(repeated)}")
        if self.target in names or self.target in self.ignore:
            raise ValueError(f"target {self.target!r} is also listed as a feature or ignored")
        overlap = sorted(set(names) & set(self.ignore))
        if overlap:
            raise ValueError(f"column(s) {', '.join(overlap)} are both features and ignored")
        if self.task == "regression":
            if self.classes is not None or self.positive_class is not None:
                raise ValueError("a regression dataset has no classes or positive_class")
            return self
        if self.classes is None:
            raise ValueError(f"a {self.task} dataset needs its list of classes")
        if self.task == "binary":
            if len(self.classes) != 2:
                raise ValueError(f"a binary dataset has exactly 2 classes, got {self.classes}")
            if self.positive_class is None or self.positive_class not in self.classes:
                raise ValueError(
                    f"positive_class {self.positive_class!r} must be one of the classes "
                    f"{self.classes}"
                )
        elif self.positive_class is not None:
            raise ValueError("positive_class applies to binary datasets only")
        return self

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in spec order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """Every column the file may hold: features, the target, then the ignored ones."""
        return [*self.feature_names, self.target, *self.ignore]


def spec_path(project_dir: Path, name: str) -> Path:
    """Where the spec of dataset ``name`` lives: ``data/<name>/dataset.yaml``."""
    return Path(project_dir) / "data" / name / SPEC_FILE


def parse_dataset_spec(data: object, source: str = "<spec>") -> DatasetSpec:
    """Validate a spec from already-parsed YAML.

    Args:
        data: the mapping read from the file.
        source: the file name, used in the error message.

    Raises:
        DatasetSpecError: one sentence per broken field: where, the value, what is expected.
    """
    if not isinstance(data, dict):
        raise DatasetSpecError(
            f"{source} must be a YAML mapping (name, task, target, features …), got "
            f"{type(data).__name__}; see docs/datasets.md for the spec reference"
        )
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(dict.fromkeys(_describe(err) for err in _by_field(e.errors())))
        raise DatasetSpecError(
            f"{source} is not a valid dataset spec: {problems}; fix the field(s) named "
            "(docs/datasets.md lists every field)"
        ) from e


def load_dataset_spec(path: Path) -> DatasetSpec:
    """Read and validate ``data/<dataset>/dataset.yaml``.

    Raises:
        DatasetSpecError: the file is missing, is not YAML, or a field is wrong (named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetSpecError(
            f"no dataset spec at {path}; write one with `slipway data infer-spec` and commit it"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DatasetSpecError(f"{path} is not valid YAML ({e}); fix the syntax") from e
    return parse_dataset_spec(data, str(path))


#: Key of the spec inside a KFP Dataset artifact's metadata (written by pull-data).
SPEC_METADATA_KEY = "spec"


def spec_to_metadata(spec: DatasetSpec) -> dict:
    """The spec as a JSON-able dict, for a Dataset artifact's metadata or a package manifest."""
    return spec.model_dump(mode="json", exclude_none=True)


def spec_from_metadata(metadata: dict, source: str = "dataset artifact metadata") -> DatasetSpec:
    """The spec that pull-data stored in a Dataset artifact's metadata (``metadata["spec"]``).

    Raises:
        DatasetSpecError: the metadata has no spec (an artifact from an older pull-data) or it is
            invalid.
    """
    if SPEC_METADATA_KEY not in metadata:
        raise DatasetSpecError(
            f"{source} has no {SPEC_METADATA_KEY!r} entry; the dataset was pulled by a pull-data "
            "that predates dataset specs: rerun the whole pipeline"
        )
    return parse_dataset_spec(_whole_floats_to_int(metadata[SPEC_METADATA_KEY]), source)


def _whole_floats_to_int(value: object) -> object:
    """Undo protobuf's numbers: KFP stores artifact metadata as a ``Struct``, every int a double.

    Safe for a spec: its only float fields (``min``/``max``) accept ints, and class labels and
    categories are never floats.
    """
    if isinstance(value, dict):
        return {k: _whole_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats_to_int(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def dump_dataset_spec(spec: DatasetSpec, header: str = "") -> str:
    """The spec as YAML text (fields in declaration order, unset optionals left out).

    Args:
        spec: the spec to write.
        header: comment lines put first (each gets a ``# `` prefix).
    """
    body = yaml.safe_dump(
        spec.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True, width=100
    )
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


def _by_field(errors: list) -> list:
    """One error per field: a union (``int | float``) reports once per member, keep the first."""
    seen: dict[tuple, dict] = {}
    for err in errors:
        loc = tuple(p for p in err["loc"] if not _UNION_TAG.match(str(p)))
        seen.setdefault(loc, {**err, "loc": loc})
    return list(seen.values())


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"field {where} is missing"
    if err["type"] == "extra_forbidden":
        return f"field {where} is not a spec field (value {err['input']!r})"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error":
        return f"{where}: {message}" if where else message
    return f"field {where} has {err['input']!r} ({message})"
