"""``slipway submit``: upload the compiled pipeline to Kubeflow Pipelines, run or schedule it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slipway.cli.common import console, fails_cleanly


def register(app: typer.Typer) -> None:
    """Add the ``submit`` command to ``app``."""
    app.command("submit")(submit_cmd)


@fails_cleanly
def submit_cmd(
    host: Annotated[
        str | None, typer.Option(help="KFP API endpoint [default: SLIPWAY_KFP_HOST].")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Kubeflow profile namespace for the experiment and runs.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="KF_PIPELINES_TOKEN", help="Bearer token.", show_default=False),
    ] = None,
    token_path: Annotated[
        Path | None,
        typer.Option(
            envvar="KF_PIPELINES_SA_TOKEN_PATH", help="File holding a (service account) token."
        ),
    ] = None,
    cookie: Annotated[
        str | None,
        typer.Option(
            envvar="KF_PIPELINES_COOKIE",
            help="Session cookie of a Dex/Cognito front end: authservice_session=...",
            show_default=False,
        ),
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(help="Compiled pipeline [default: pipelines/training_pipeline.yaml]."),
    ] = None,
    version_name: Annotated[
        str | None, typer.Option(help="Pipeline version name [default: the git commit].")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="KFP experiment [default: SLIPWAY_EXPERIMENT_NAME].")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Run parameter KEY=VALUE (JSON values allowed); repeat."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset to train on; sets dataset, dataset_version (default: its latest) and "
            "the params sections (params.yaml with data/NAME/params.yaml merged over it)."
        ),
    ] = None,
    dataset_version: Annotated[
        str | None,
        typer.Option(
            help="Dataset version; with --dataset checked against it, alone a shortcut for "
            "--param dataset_version=..."
        ),
    ] = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the run or schedule.")] = None,
    cron: Annotated[
        str | None,
        typer.Option(help="Create a recurring run instead, e.g. '0 3 * * *' (UTC)."),
    ] = None,
    upload_only: Annotated[
        bool, typer.Option(help="Only upload the pipeline version; start nothing.")
    ] = False,
    service_account: Annotated[
        str, typer.Option(help="Service account of the runs (IRSA identity).")
    ] = "slipway-pipeline",
) -> None:
    """Upload the compiled pipeline as a version named after the commit, then run or schedule it."""
    from slipway.config import load_settings
    from slipway.errors import ConfigError
    from slipway.orchestration import (
        SubmitPlan,
        connect,
        parse_params,
        read_package,
        resolve_version_name,
        submit_pipeline,
        to_kfp_cron,
    )

    settings = load_settings()
    # everything typed is validated before the first call to the API
    if cron is not None and upload_only:
        raise ConfigError("--cron and --upload-only exclude each other")
    if cron is not None:
        to_kfp_cron(cron)
    pkg = read_package(package or settings.compiled_pipeline, settings.component_image)
    params = parse_params(param or [], pkg.parameters)
    if dataset is not None:
        from slipway.orchestration import resolve_request

        rev = str(params.get("dataset_rev", "HEAD"))
        request = resolve_request(settings, dataset, dataset_version, rev)
        # an explicit --param still wins over what the dataset implies
        params = {**request.arguments(), **params}
    elif dataset_version is not None:
        params["dataset_version"] = dataset_version
    plan = SubmitPlan(
        package=pkg,
        version_name=resolve_version_name(version_name, settings.git_commit),
        experiment=experiment or settings.experiment_name,
        params=params,
        namespace=namespace,
        run_name=run_name,
        cron=cron,
        upload_only=upload_only,
        service_account=service_account,
    )
    client = connect(
        host or settings.kfp_host,
        namespace=namespace,
        token=token,
        token_path=token_path,
        cookie=cookie,
    )
    result = submit_pipeline(client, plan)
    state = "uploaded" if result.version_created else "already there, reused"
    console.print(
        f"pipeline {pkg.name} ({result.pipeline_id}) version {plan.version_name} "
        f"({result.version_id}): {state}"
    )
    for schedule in result.disabled_schedules:
        console.print(f"disabled the previous schedule {schedule}")
    if result.run_id:
        console.print(f"started run {result.run_id} in experiment {plan.experiment}")
    if result.recurring_run_id:
        console.print(
            f"created recurring run {result.recurring_run_id} ({cron}) in experiment "
            f"{plan.experiment}"
        )
