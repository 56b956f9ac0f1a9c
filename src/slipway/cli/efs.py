"""``slipway efs-sync``: copy a model package from the model store to the EFS folder by hand.

The same code as the ``efs-sync`` Lambda and the embedded promotion (:mod:`slipway.packaging.efs`): verify
every SHA-256, write to a temporary folder, rename into ``<efs_root>/<model>/<version>/``, then
retention. Use it to resync a version after a failure, or to fill a fresh EFS volume.
"""

from __future__ import annotations

from typing import Annotated

import typer

from slipway.cli.common import console, fails_cleanly


def register(app: typer.Typer) -> None:
    """Mount ``efs-sync`` on ``app``."""
    app.command("efs-sync")(efs_sync_cmd)


@fails_cleanly
def efs_sync_cmd(
    version: Annotated[
        str | None,
        typer.Argument(help="Version code, e.g. v3-20261128-1f2e3d4c; default: the champion."),
    ] = None,
) -> None:
    """Copy one model version from SLIPWAY_MODEL_STORE_URL to SLIPWAY_EFS_ROOT (verified)."""
    from slipway.config import load_settings
    from slipway.errors import ConfigError
    from slipway.packaging import open_model_store, read_champion_marker, sync_from_store
    from slipway.versions import VersionCode

    code = VersionCode.parse(version) if version is not None else None  # parsed once, here
    settings = load_settings()
    store = open_model_store(settings)
    model = settings.model_name
    if code is None:
        code = read_champion_marker(store, model)
        if code is None:
            raise ConfigError(
                f"no champion marker for model {model} in {store.url}; name the version: "
                "`slipway efs-sync <version-code>`"
            )
    result = sync_from_store(store, model, code, settings)
    state = "copied" if result.created else "already present"
    console.print(f"{model} {code} {state}: {result.path}", soft_wrap=True)
    if result.champion is None:
        console.print("retention skipped: no readable champion marker")
    elif result.pruned:
        console.print(f"retention removed {', '.join(result.pruned)} (champion {result.champion})")
