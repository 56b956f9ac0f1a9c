"""The ``slipway-training`` pipeline: wiring only.

pull-data -> validate-data -> search-fan-out -> search -> evaluate -> (if the gate passes) promote.

``search-fan-out`` is a nested pipeline (a sub-DAG) that does nothing when ``search_shards`` is 1;
with more it runs search-plan and a ``dsl.ParallelFor`` of search-shard tasks, and ``search``
(after the whole sub-DAG) merges their results. docs/pipeline.md says why the fan-in goes
through the MLflow run's artifacts rather than ``dsl.Collected``.
"""

from pathlib import Path
from typing import Any

from pipelines.platform_config import PlatformConfig, apply_platform, platform_config_for
from slipway.config import COMPILED_PIPELINE, DEFAULT_DATASET, DEFAULT_DATASET_VERSION
from slipway.params import Params

PIPELINE_NAME = "slipway-training"
COMPILED = Path(__file__).resolve().parents[1] / COMPILED_PIPELINE
DEFAULT_DATASET_REV = "HEAD"
#: How many search-shard tasks run at once. kfp 2.17's ``ParallelFor(parallelism=…)`` takes an
#: int at compile time (not a run parameter), so this is set here and in the compiled YAML.
DEFAULT_SEARCH_PARALLELISM = 4


def build_training_pipeline(
    image: str,
    params: Params,
    platform: PlatformConfig | None = None,
    search_parallelism: int = DEFAULT_SEARCH_PARALLELISM,
) -> Any:
    """The pipeline function, with run-parameter defaults taken from ``params.yaml``.

    Args:
        image: the component image every task runs in (``Settings.component_image``).
        params: ``params.yaml``; its sections become the run parameters' defaults.
        platform: Kubernetes settings of the tasks; ``None`` = :func:`platform_config_for`
            ``(image)``, the committed defaults.
        search_parallelism: at most this many search-shard tasks at once (``ParallelFor``'s
            ``parallelism``, fixed at compile time).
    """
    from kfp import dsl
    from kfp.dsl import Dataset, Input

    from components import build_components

    c = build_components(image)
    platform = platform or platform_config_for(image)
    data_defaults = params.data.model_dump()
    search_defaults = params.search.model_dump()
    evaluate_defaults = params.evaluate.model_dump()
    job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER

    @dsl.pipeline(
        name="search-fan-out",
        description="With search_shards > 1: plan the shards, then fit them in parallel.",
    )
    def search_fan_out(dataset: Input[Dataset], search_params: dict, search_shards: int):
        with dsl.If(search_shards > 1, name="sharded"):
            plan = c["search-plan"](
                dataset=dataset,
                search_params=search_params,
                search_shards=search_shards,
                pipeline_run=job_id,
            )
            apply_platform(plan, "search-plan", platform)
            with dsl.ParallelFor(plan.output, parallelism=search_parallelism) as shard:
                fitted = c["search-shard"](
                    dataset=dataset,
                    search_params=search_params,
                    search_shards=search_shards,
                    pipeline_run=job_id,
                    shard=shard,
                )
                # retried once (platform_config), then the run fails naming the shard
                apply_platform(fitted, "search-shard", platform)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train a scikit-learn model on a DVC dataset version, compare it with the "
        "champion on a fixed holdout, and promote it only if it is better.",
    )
    def training_pipeline(
        dataset: str = DEFAULT_DATASET,
        dataset_version: str = DEFAULT_DATASET_VERSION,
        dataset_rev: str = DEFAULT_DATASET_REV,
        data_params: dict = data_defaults,
        search_params: dict = search_defaults,
        evaluate_params: dict = evaluate_defaults,
        search_shards: int = 1,
    ) -> str:
        # Resources, deadlines, retries (I/O steps only), caching (off), ConfigMap env, labels:
        # pipelines/platform_config.py, one call per task.
        pull = c["pull-data"](
            dataset_name=dataset, dataset_version=dataset_version, dataset_rev=dataset_rev
        )
        apply_platform(pull, "pull-data", platform)
        validate = c["validate-data"](dataset=pull.outputs["dataset"])
        apply_platform(validate, "validate-data", platform)
        fan_out = search_fan_out(
            dataset=pull.outputs["dataset"],
            search_params=search_params,
            search_shards=search_shards,
        ).after(validate)
        trained = c["search"](
            dataset=pull.outputs["dataset"],
            data_params=data_params,
            search_params=search_params,
            search_shards=search_shards,
            pipeline_run=job_id,
        ).after(fan_out)
        apply_platform(trained, "search", platform)
        evaluated = c["evaluate"](
            dataset=pull.outputs["dataset"],
            model=trained.outputs["model"],
            validation=validate.outputs["report"],
            run_id=trained.outputs["run_id"],
            model_uri=trained.outputs["model_uri"],
            data_params=data_params,
            search_params=search_params,
            evaluate_params=evaluate_params,
        )
        apply_platform(evaluated, "evaluate", platform)
        with dsl.If(evaluated.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - KFP condition
            promoted = c["promote"](
                dataset=pull.outputs["dataset"],
                model=trained.outputs["model"],
                run_id=trained.outputs["run_id"],
                model_uri=trained.outputs["model_uri"],
                decision=evaluated.outputs["decision"],
                data_params=data_params,
                search_params=search_params,
            )
            apply_platform(promoted, "promote", platform)
        return trained.outputs["run_id"]

    return training_pipeline


def compile_training_pipeline(
    image: str, params: Params, output: Path = COMPILED, platform: PlatformConfig | None = None
) -> Path:
    """Compile to ``output`` (temp name, then rename) and return its path."""
    import os

    from kfp import compiler

    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    compiler.Compiler().compile(build_training_pipeline(image, params, platform), str(tmp))
    tmp.write_text(_stable_header(tmp.read_text()))
    os.replace(tmp, output)
    return output


def _stable_header(text: str) -> str:
    """Sort the dict defaults that kfp prints in the YAML's header comment.

    kfp renders them from protobuf maps, whose order changes from one process to the next; the
    committed YAML must be byte-stable for the golden test and for clean diffs.
    """
    import ast
    import re

    def _sorted(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _sorted(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [_sorted(v) for v in value]
        return value

    def _fix(match: re.Match[str]) -> str:
        return f"{match[1]}{_sorted(ast.literal_eval(match[2]))!r}]"

    return re.sub(r"^(#\s+\w+: dict \[Default: )(\{.*\})\]$", _fix, text, flags=re.MULTILINE)
