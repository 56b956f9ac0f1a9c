"""``slipway serve``: the model server (the server image's ENTRYPOINT is ``python -m slipway serve``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from slipway.cli.common import console, fails_cleanly
from slipway.serving.limits import LIMIT_ENV, ServingLimits

if TYPE_CHECKING:
    from slipway.config import Settings
    from slipway.versions import VersionCode

# the option defaults are ServingLimits' own; each limit can also come from its SLIPWAY_SERVE_*
# variable (the option wins), which is also how the worker processes receive it
DEFAULTS = ServingLimits()


def register(app: typer.Typer) -> None:
    """Mount ``serve`` on ``app``."""
    app.command("serve")(serve)


@fails_cleanly
def serve(
    host: str = typer.Option("0.0.0.0", help="Address to bind."),  # noqa: S104 - a server in a pod
    port: int = typer.Option(8080, help="Port to bind."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes (1 per CPU of the pod)."),
    model_version: str | None = typer.Option(
        None,
        help="Version code to serve; default SLIPWAY_MODEL_VERSION, then MODEL_VERSION.",
    ),
    champion: bool = typer.Option(
        False,
        "--champion",
        help="Serve the MLflow registry's champion (local use: `make serve`); the pods pin a "
        "version instead.",
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Serve the model this dataset trains (its spec's model_name, else "
        "slipway-<dataset>), e.g. with --champion after `slipway run --dataset NAME`; "
        "default: SLIPWAY_MODEL_NAME.",
    ),
    max_batch_rows: int = typer.Option(
        DEFAULTS.max_batch_rows,
        min=1,
        envvar=LIMIT_ENV["max_batch_rows"],
        help="Rows per infer request; more is 413.",
    ),
    max_concurrency: int = typer.Option(
        DEFAULTS.max_concurrency,
        min=1,
        envvar=LIMIT_ENV["max_concurrency"],
        help="Infer requests in progress per worker; more is 429.",
    ),
    max_body_bytes: int = typer.Option(
        DEFAULTS.max_body_bytes,
        min=1,
        envvar=LIMIT_ENV["max_body_bytes"],
        help="Request body bytes (Content-Length and bytes read); more is 413.",
    ),
    body_timeout_seconds: float = typer.Option(
        DEFAULTS.body_timeout_seconds,
        min=0.1,
        envvar=LIMIT_ENV["body_timeout_seconds"],
        help="Seconds an infer body may take to arrive after its headers; more is 408.",
    ),
    header_timeout_seconds: float = typer.Option(
        DEFAULTS.header_timeout_seconds,
        min=0.1,
        envvar=LIMIT_ENV["header_timeout_seconds"],
        help="Seconds a request's headers may take; slower connections are closed.",
    ),
) -> None:
    """Serve the model package <efs_root>/<model>/<version>/ over the Open Inference Protocol."""
    from slipway.config import load_settings
    from slipway.serving.server import MULTIPROC_ENV, prepare_multiproc_dir, run_server
    from slipway.versions import VersionCode

    # the option (or SLIPWAY_MODEL_VERSION / MODEL_VERSION, read by Settings) is where the code
    # enters: parsed once, then Settings keeps it
    settings = (
        load_settings(model_version=VersionCode.parse(model_version))
        if model_version
        else load_settings()
    )
    if dataset:
        settings = _dataset_settings(settings, dataset)
    if champion:
        settings = settings.model_copy(update={"model_version": _champion_version(settings)})
    multiproc_dir = prepare_multiproc_dir(os.environ.get(MULTIPROC_ENV), workers)
    console.print(
        f"serving {settings.model_name} {settings.model_version or '(no version set)'} from "
        f"{settings.efs_root} on {host}:{port} with {workers} worker(s)"
    )
    run_server(
        settings,
        host,
        port,
        workers,
        ServingLimits(
            max_batch_rows=max_batch_rows,
            max_concurrency=max_concurrency,
            max_body_bytes=max_body_bytes,
            body_timeout_seconds=body_timeout_seconds,
            header_timeout_seconds=header_timeout_seconds,
        ),
        multiproc_dir,
    )


def _dataset_settings(settings: Settings, dataset: str) -> Settings:
    """``settings`` naming the model ``dataset`` trains, from its spec in the project."""
    from slipway.data import load_dataset_spec, settings_for_spec, spec_path
    from slipway.errors import DatasetSpecError

    path = spec_path(settings.project_dir, dataset)
    if not path.parent.is_dir():
        known = sorted(p.parent.name for p in path.parent.parent.glob(f"*/{path.name}"))
        raise DatasetSpecError(
            f"unknown dataset {dataset!r} in {path.parent.parent}; "
            f"known: {', '.join(known) or 'none'} (`slipway data list`)"
        )
    return settings_for_spec(settings, load_dataset_spec(path))


def _champion_version(settings: Settings) -> VersionCode:
    """The champion's version code in the registry at ``settings.tracking_uri``."""
    from slipway.errors import RegistryError
    from slipway.registry import champion_version_code, get_client

    found = champion_version_code(get_client(settings.tracking_uri), settings.model_name)
    if found is None:
        raise RegistryError(
            f"model {settings.model_name!r} has no champion in {settings.tracking_uri}; "
            "train and promote one first (`make run`)"
        )
    return found[1]


def main() -> None:
    """``python -m slipway.cli.serve``: the verb alone (the bench runs it this way)."""
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(standalone)
    standalone()


if __name__ == "__main__":
    main()
