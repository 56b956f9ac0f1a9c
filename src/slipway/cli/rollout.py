"""``slipway deploy``, ``slipway rollback`` and ``slipway audit``: what the cluster serves.

Mounted by the main CLI with ``rollout_cli.register(app)``.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax
from rich.table import Table

from slipway.cli.common import console, fails_cleanly
from slipway.release.names import DEPLOYMENT, status_command

EnvOption = Annotated[str, typer.Option("--env", help="Overlay: dev or prod.")]
ManifestsOption = Annotated[
    Path | None,
    typer.Option(
        "--manifests", help="Folder with base/ and overlays/ (default <project>/manifests)."
    ),
]
KubectlOption = Annotated[str, typer.Option("--kubectl", help="kubectl executable.")]
TimeoutOption = Annotated[
    str, typer.Option("--timeout", help="How long to wait for the rollout (90s, 5m, 1h).")
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who, for the audit trail (default $USER <git user.email>)."),
]


def register(app: typer.Typer) -> None:
    """Mount ``deploy``, ``rollback`` and ``audit`` on ``app``."""
    app.command("deploy")(deploy_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("audit")(audit_cmd)


def _actor(actor: str | None, project_dir: Path) -> str:
    if actor:
        return actor
    try:
        user = os.environ.get("USER") or getpass.getuser()
    except OSError:
        user = "unknown"
    try:
        email = subprocess.run(
            ["git", "config", "user.email"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        email = ""
    return f"{user} <{email}>" if email else user


@fails_cleanly
def deploy_cmd(
    version: Annotated[str, typer.Option("--version", help="Version code, e.g. v3-20261128-…")],
    env: EnvOption = "prod",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the rendered diff; change nothing.")
    ] = False,
    cause: Annotated[
        str | None,
        typer.Option("--cause", help="Change cause (default 'deploy model <version>')."),
    ] = None,
    manifests: ManifestsOption = None,
    kubectl: KubectlOption = "kubectl",
    timeout: TimeoutOption = "5m",
    actor: ActorOption = None,
) -> None:
    """Pin a model version in overlays/<env>/model-version.yaml and roll it out."""
    from slipway.config import load_settings
    from slipway.release import DeployRequest, Kubectl, deploy_version, resume_command
    from slipway.versions import VersionCode

    code = VersionCode.parse(version)  # the option is where the code enters: parsed once
    settings = load_settings()
    request = DeployRequest(
        version=code,
        env=env,
        manifests_root=manifests or settings.project_dir / "manifests",
        actor=_actor(actor, settings.project_dir),
        cause=cause,
        dry_run=dry_run,
        timeout=timeout,
    )
    result = deploy_version(
        settings, request, kubectl=Kubectl(kubectl, namespace=settings.namespace)
    )
    version = code
    if result.diff:
        console.print(Syntax(result.diff, "diff", theme="ansi_dark", background_color="default"))
    else:
        console.print(f"overlays/{env} already pins {version}: the rendered manifests are equal")
    if result.overlay_file is None:
        console.print(
            f"dry run: {result.from_version} -> {version} in overlays/{env}; nothing changed"
        )
        return
    overlay = result.overlay_file.parent
    if result.context is None:
        resume = resume_command(env, result.from_version, request.cause or "", "deploy")
        console.print(
            f"wrote {result.overlay_file} (pins {version}). No kubectl context is configured, so "
            f"nothing was applied: review `git diff {result.overlay_file}`, apply it with "
            f"`kubectl apply -k {overlay}`, wait with `{status_command(settings.namespace)}`, "
            f"then run `{resume}` to move the registry alias and "
            "record the deploy.",
            soft_wrap=True,
        )
        return
    served, sync = result.served, result.sync
    if served is None or sync is None:  # applied deploys always carry both
        raise RuntimeError("deploy applied but returned no served version")
    console.print(
        f"[green]deployed[/] {version} to context {result.context} (revision "
        f"{served.revision}); champion -> registry version {sync.registry_version} "
        f"(was {sync.alias_before}); audit {sync.audit_key or 'already recorded'}. "
        f"Commit {result.overlay_file}.",
        soft_wrap=True,
    )


@fails_cleanly
def rollback_cmd(
    env: EnvOption = "prod",
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="Revision to return to (default previous).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")] = (
        "no reason given"
    ),
    sync_registry_only: Annotated[
        bool,
        typer.Option(
            "--sync-registry-only",
            help="Leave the cluster alone; bring registry alias, champion marker, audit trail "
            "and overlay file in line with what it serves (finishes a deploy/rollback that "
            "stopped part-way).",
        ),
    ] = False,
    from_version: Annotated[
        str | None,
        typer.Option("--from", help="With --sync-registry-only: the version served before."),
    ] = None,
    record_as: Annotated[
        str, typer.Option("--record-as", help="With --sync-registry-only: sync, rollback, deploy.")
    ] = "sync",
    manifests: ManifestsOption = None,
    kubectl: KubectlOption = "kubectl",
    timeout: TimeoutOption = "5m",
    actor: ActorOption = None,
) -> None:
    """Roll the model server back a revision; move the champion alias back; record who/when/why."""
    from slipway.config import load_settings
    from slipway.release import Kubectl, RollbackRequest, rollback_deployment
    from slipway.versions import VersionCode

    before = VersionCode.parse(from_version) if from_version is not None else None
    settings = load_settings()
    request = RollbackRequest(
        env=env,
        manifests_root=manifests or settings.project_dir / "manifests",
        actor=_actor(actor, settings.project_dir),
        reason=reason,
        to_revision=to_revision,
        timeout=timeout,
        sync_only=sync_registry_only,
        from_version=before,
        record_as=record_as,
    )
    result = rollback_deployment(
        settings, request, kubectl=Kubectl(kubectl, namespace=settings.namespace)
    )
    served, sync = result.served, result.sync
    verb = "rolled back" if result.action == "rollback" else "synced registry"
    console.print(
        f"[green]{verb}[/]: context {result.context} serves {served.version} (revision "
        f"{served.revision}, was {result.from_version}); champion -> registry version "
        f"{sync.registry_version} (was {sync.alias_before}); audit "
        f"{sync.audit_key or 'already recorded'}; pinned in {result.overlay_file}: commit it "
        f"(git commit -m {shlex.quote(f'rollback to {served.version}')} {result.overlay_file}).",
        soft_wrap=True,
    )
    if result.from_version == served.version and result.action == "rollback":
        console.print(
            "[yellow]note:[/] the previous revision pins the same model version; it differed "
            f"in something else (image, resources). Check `kubectl -n {settings.namespace} "
            f"rollout history deployment/{DEPLOYMENT}`."
        )


@fails_cleanly
def audit_cmd(
    limit: Annotated[int, typer.Option("--limit", help="Show the newest N records.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record a line.")] = False,
) -> None:
    """Print the deploy/rollback audit trail kept in the model registry."""
    from slipway.config import load_settings
    from slipway.registry import get_client
    from slipway.release import read_audit_trail

    settings = load_settings()
    trail = read_audit_trail(get_client(settings.tracking_uri), settings.model_name)
    trail = trail[-limit:] if limit > 0 else trail
    if as_json:
        for _, record in trail:
            typer.echo(record.to_json())
        return
    table = Table(title=f"audit trail of model {settings.model_name} ({len(trail)} shown)")
    for column in ("when (UTC)", "action", "who", "from", "to", "revision", "env", "why"):
        table.add_column(column, overflow="fold")
    for _, r in trail:
        table.add_row(
            r.at,
            r.action,
            r.actor,
            r.from_version or "-",
            r.to_version,
            str(r.revision) if r.revision is not None else "-",
            f"{r.env} ({r.context})" if r.context else r.env,
            r.reason,
        )
    console.print(table)
