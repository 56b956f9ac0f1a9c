"""The ``slipway-training`` pipeline: wiring only.

pull-data -> validate-data -> search -> evaluate -> (if the gate passes) promote.
"""

from pathlib import Path
from typing import Any

from slipway.params import Params

PIPELINE_NAME = "slipway-training"
COMPILED = Path(__file__).with_name("training_pipeline.yaml")
DEFAULT_DATASET_VERSION = "v2"
DEFAULT_DATASET_REV = "HEAD"


def build_training_pipeline(image: str, params: Params) -> Any:
    """The pipeline function, with run-parameter defaults taken from ``params.yaml``."""
    from kfp import dsl

    from components import build_components

    c = build_components(image)
    data_defaults = params.data.model_dump()
    search_defaults = params.search.model_dump()
    evaluate_defaults = params.evaluate.model_dump()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train a scikit-learn model on a DVC dataset version, compare it with the "
        "champion on a fixed holdout, and promote it only if it is better.",
    )
    def training_pipeline(
        dataset_version: str = DEFAULT_DATASET_VERSION,
        dataset_rev: str = DEFAULT_DATASET_REV,
        data_params: dict = data_defaults,
        search_params: dict = search_defaults,
        evaluate_params: dict = evaluate_defaults,
    ) -> str:
        # No task is cached: dataset_rev may name a moving branch, and search/evaluate/promote
        # write to MLflow and the registry, so a cache hit would skip real side effects.
        pull = c["pull-data"](dataset_version=dataset_version, dataset_rev=dataset_rev)
        pull.set_caching_options(False).set_retry(
            num_retries=3, backoff_duration="30s", backoff_factor=2
        )
        validate = c["validate-data"](dataset=pull.outputs["dataset"], data_params=data_params)
        validate.set_caching_options(False)
        trained = c["search"](
            dataset=pull.outputs["dataset"], data_params=data_params, search_params=search_params
        ).after(validate)
        trained.set_caching_options(False)
        evaluated = c["evaluate"](
            dataset=pull.outputs["dataset"],
            model=trained.outputs["model"],
            run_id=trained.outputs["run_id"],
            data_params=data_params,
            search_params=search_params,
            evaluate_params=evaluate_params,
        )
        evaluated.set_caching_options(False)
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
            promoted.set_caching_options(False).set_retry(num_retries=2, backoff_duration="30s")
        return trained.outputs["run_id"]

    return training_pipeline


def compile_training_pipeline(image: str, params: Params, output: Path = COMPILED) -> Path:
    """Compile to ``output`` (temp name, then rename) and return its path."""
    import os

    from kfp import compiler

    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    compiler.Compiler().compile(build_training_pipeline(image, params), str(tmp))
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
