"""What one training run is asked to do, resolved against the DVC project before anything runs.

:func:`resolve_request` is the one place ``slipway run`` and ``slipway submit`` turn a dataset
name, a version and a params file into run arguments: the dataset and version must exist in the
DVC project at ``dataset_rev`` (the view pull-data will have), its spec must be valid, and its
``data/<name>/params.yaml`` is deep-merged over the project's ``params.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.config import DEFAULT_DATASET, DEFAULT_DATASET_VERSION, Settings
from slipway.data import DatasetSpec
from slipway.params import Params, check_params_for_task, parse_params, read_params_file


@dataclass(frozen=True)
class TrainingRequest:
    """What a user asks of one run, already validated.

    Attributes:
        params: the params, validated; its sections become the run parameters.
        dataset: the dataset's name (its folder under ``data/``).
        dataset_version: readable dataset version, e.g. ``v1`` or ``v2``.
        dataset_rev: git revision of the DVC pointers.
        spec: the dataset's spec at ``dataset_rev``; the ``data_params`` run argument (target
            and row limits) is taken from it. ``None``: from ``params.data``.
        search_shards: the ``search_shards`` run parameter: how many search-shard tasks the
            grid's fits are spread over (1: the whole search in the search task). The search
            step checks it against the grid.
    """

    params: Params
    dataset: str = DEFAULT_DATASET
    dataset_version: str = DEFAULT_DATASET_VERSION
    dataset_rev: str = "HEAD"
    spec: DatasetSpec | None = None
    search_shards: int = 1

    def data_params(self) -> dict[str, Any]:
        """The ``data_params`` run argument: the spec's target and limits over ``params.data``."""
        data = self.params.data.model_dump()
        if self.spec is not None:
            data.update(
                target=self.spec.target,
                min_rows=self.spec.min_rows,
                max_duplicate_rows=self.spec.max_duplicate_rows,
            )
        return data

    def arguments(self) -> dict[str, Any]:
        """The pipeline's run parameters, as a dashboard user would set them."""
        return {
            "dataset": self.dataset,
            "dataset_version": self.dataset_version,
            "dataset_rev": self.dataset_rev,
            "data_params": self.data_params(),
            "search_params": self.params.search.model_dump(),
            "evaluate_params": self.params.evaluate.model_dump(),
            "search_shards": self.search_shards,
        }


def resolve_request(
    settings: Settings,
    dataset: str | None = None,
    dataset_version: str | None = None,
    dataset_rev: str = "HEAD",
    params_file: Path | None = None,
) -> TrainingRequest:
    """Check the dataset, version, spec and params of a run; read nothing else, write nothing.

    Args:
        settings: names the DVC project (``dvc_repo``), its remote and ``params.yaml``.
        dataset: the dataset; ``None`` = breast-cancer.
        dataset_version: the version; ``None`` = the dataset's latest.
        dataset_rev: git revision of the DVC project to read.
        params_file: a whole params file to use as is; ``None`` = the project's ``params.yaml``
            with the dataset's ``data/<name>/params.yaml`` (if any) deep-merged over it.

    Raises:
        DatasetVersionError: unknown dataset or version (the known ones are listed).
        DatasetSpecError: the dataset's spec is missing or invalid.
        ConfigError: a params file is missing or invalid, or its scoring, primary metric or
            thresholds do not fit the dataset's task.
    """
    from slipway.data import open_project, resolve_dataset

    name = dataset or DEFAULT_DATASET
    where = f"{settings.dvc_repo!r} at revision {dataset_rev!r}"
    with open_project(
        settings.dvc_repo, dataset_rev, settings.dvc_remote_url, settings.aws_endpoint_url
    ) as fs:
        found = resolve_dataset(fs, name, dataset_version, where)
    if params_file is not None:
        params = parse_params(read_params_file(params_file), str(params_file))
    else:
        params = dataset_params(settings.params_file, found.params_override, name)
    check_params_for_task(params, found.spec.task)  # a metric of another task: before any run
    return TrainingRequest(
        params=params,
        dataset=name,
        dataset_version=found.version,
        dataset_rev=dataset_rev,
        spec=found.spec,
    )


def dataset_params(base_file: Path, override: dict[str, Any] | None, dataset: str) -> Params:
    """The project's params with dataset ``dataset``'s override deep-merged over them.

    Raises:
        ConfigError: either file is invalid; the message names the merged source.
    """
    from slipway.data import merge_params

    base = read_params_file(base_file)
    if override is None:
        return parse_params(base, str(base_file))
    source = f"{base_file} with data/{dataset}/params.yaml merged over it"
    return parse_params(merge_params(base, override), source)
