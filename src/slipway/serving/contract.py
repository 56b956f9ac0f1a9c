"""The served model's input and output contract, read from its package manifest.

Every feature takes one tensor named after it (``[N]`` or ``[N, 1]``), its datatype given by the
feature's kind (``manifest["features"]``):

============  ==========================================  ====================================
kind          datatype                                    a missing value (nullable features)
============  ==========================================  ====================================
numeric       ``FP64``, ``FP32``, ``INT64``, ``INT32``    JSON ``null``; binary: NaN
integer       the same                                    the same
boolean       ``BOOL``, or any numeric datatype holding   JSON ``null``; binary: NaN (numeric
              only 0 and 1                                datatypes)
categorical   ``BYTES`` (JSON strings; binary: 4-byte     JSON ``null``; ``""``
              length-prefixed UTF-8)
============  ==========================================  ====================================

A non-nullable feature refuses a missing value (400). A model whose features are all numeric or
integer also takes one tensor ``input-0`` ``[N, n_features]``, as it always has.

Outputs by task: classification ``label`` (the class value: ``INT64``, ``BYTES`` for text
classes, ``BOOL``) ``[N]`` and ``probability`` ``FP64``: ``[N]`` the positive class's for binary
(as servers have always answered), ``[N, n_classes]`` in ``classes`` order for multiclass;
regression ``value`` ``FP64`` ``[N]``.

A model is *plain* when it is what this server first served: binary, every feature numeric or
integer and not nullable, classes ``[0, 1]``. Plain models keep the numeric path of
:mod:`slipway.serving.protocol` (float64 rows, no per-column work); every other model is decoded
to columns by :mod:`slipway.serving.columns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slipway.serving.schema import INPUT_NAME, OUTPUT_DATATYPES

NUMBER_KINDS = ("numeric", "integer")
KINDS = (*NUMBER_KINDS, "boolean", "categorical")
#: The datatype a feature's kind is described with in the model metadata.
KIND_DATATYPES = {"numeric": "FP64", "integer": "FP64", "boolean": "BOOL", "categorical": "BYTES"}
TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class FeatureInput:
    """One feature's tensor: its name, kind, whether it may be missing, its categories."""

    name: str
    kind: str
    nullable: bool = False
    categories: tuple[str, ...] = ()

    @property
    def datatype(self) -> str:
        """The datatype the model metadata gives this feature."""
        return KIND_DATATYPES[self.kind]


@dataclass(frozen=True)
class Contract:
    """What a served model takes and returns (the module docstring)."""

    task: str
    features: tuple[FeatureInput, ...]
    classes: tuple[Any, ...] = ()
    positive_class: Any = None
    label_datatype: str = "INT64"
    names: list[str] = field(init=False)
    nullable: frozenset[str] = field(init=False)
    #: binary on 0/1 classes, every feature numeric or integer and never missing: the numeric
    #: path (a field, not a property: the infer path reads it on every request)
    plain: bool = field(init=False)
    outputs: dict[str, str] = field(init=False)  # output name -> datatype, in answer order

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: derived fields are set once here
        set_(self, "names", [f.name for f in self.features])
        set_(self, "nullable", frozenset(f.name for f in self.features if f.nullable))
        set_(
            self,
            "plain",
            self.task == "binary"
            and list(self.classes) == [0, 1]
            and self.positive_class == 1
            and all(f.kind in NUMBER_KINDS and not f.nullable for f in self.features),
        )
        if self.task == "regression":
            outputs = {"value": "FP64"}
        elif self.plain:
            outputs = OUTPUT_DATATYPES  # the very dict the numeric path checks names against
        else:
            outputs = {"label": self.label_datatype, "probability": "FP64"}
        set_(self, "outputs", outputs)

    @property
    def takes_matrix(self) -> bool:
        """Whether ``input-0`` ``[N, n_features]`` is accepted: no categorical feature."""
        return all(f.kind != "categorical" for f in self.features)

    @property
    def positive_index(self) -> int:
        """The column of the positive class in the model's probabilities (binary)."""
        return list(self.classes).index(self.positive_class)

    def output_shape(self, name: str) -> list[int]:
        """An output's shape in the model metadata (``-1``: any number of rows)."""
        if name == "probability" and self.task == "multiclass":
            return [-1, len(self.classes)]
        return [-1]

    def metadata_inputs(self) -> list[dict[str, Any]]:
        """The ``inputs`` of the model metadata: ``input-0`` (plain models) or one per feature."""
        if self.plain:
            return [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, len(self.features)]}]
        return [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in self.features]

    def metadata_outputs(self) -> list[dict[str, Any]]:
        """The ``outputs`` of the model metadata."""
        return [
            {"name": name, "datatype": datatype, "shape": self.output_shape(name)}
            for name, datatype in self.outputs.items()
        ]

    def metadata_parameters(self) -> dict[str, Any]:
        """What the metadata's ``parameters`` say of the contract (besides the batch limit)."""
        out: dict[str, Any] = {"features": self.names, "task": self.task}
        if self.task != "regression":
            out["classes"] = list(self.classes)
        if self.task == "binary":
            out["positive_class"] = self.positive_class
        if not self.plain:
            out["kinds"] = {f.name: f.kind for f in self.features}
            out["nullable"] = [f.name for f in self.features if f.nullable]
            out["categories"] = {
                f.name: list(f.categories) for f in self.features if f.kind == "categorical"
            }
        return out


def contract_from_manifest(manifest: dict[str, Any]) -> Contract:
    """The contract a package's manifest describes.

    A manifest without ``task``, ``kind`` or ``classes`` (a package built without a dataset spec)
    is the plain binary contract: numeric features, classes ``[0, 1]``, positive class 1.

    Raises:
        ValueError: an unknown task or kind, or a classification manifest without classes or
            whose positive class is not one of them.
    """
    task = manifest.get("task", "binary")
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    features = []
    for record in manifest.get("features", []):
        kind = record.get("kind", "numeric")
        if kind not in KINDS:
            raise ValueError(
                f"feature {record.get('name')!r} has kind {kind!r}, not one of {KINDS}"
            )
        features.append(
            FeatureInput(
                name=record["name"],
                kind=kind,
                nullable=bool(record.get("nullable", False)),
                categories=tuple(str(c) for c in record.get("categories") or ()),
            )
        )
    if task == "regression":
        return Contract(task, tuple(features))
    classes = tuple(manifest.get("classes", (0, 1)))
    if not classes:
        raise ValueError("a classification manifest must list its classes")
    positive = manifest.get("positive_class", 1) if task == "binary" else None
    if task == "binary" and positive not in classes:
        raise ValueError(f"positive_class {positive!r} is not one of the classes {list(classes)}")
    label = next(
        (o.get("datatype") for o in manifest.get("outputs", []) if o.get("name") == "label"),
        "INT64",
    )
    if label not in ("INT64", "BYTES", "BOOL"):
        raise ValueError(f"the label output's datatype {label!r} is not INT64, BYTES or BOOL")
    return Contract(task, tuple(features), classes, positive, label)
