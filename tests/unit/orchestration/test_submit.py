"""slipway.orchestration.submit: the calls made to kfp.Client, checked on a recording fake client."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from kfp_server_api.exceptions import ApiException
from typer.testing import CliRunner

from pipelines.compiled import COMPILED
from slipway import orchestration
from slipway.cli import submit as submit_cli
from slipway.errors import ConfigError
from slipway.orchestration.submit import (
    PipelinePackage,
    SubmitError,
    SubmitPlan,
    connect,
    parse_params,
    read_package,
    resolve_version_name,
    submit_pipeline,
    to_kfp_cron,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PACKAGE = PipelinePackage(
    Path("/tmp/p.yaml"), "slipway-training", ("dataset_version", "dataset_rev"), ("img:1",)
)


class FakeClient:
    """Records every call as (method, kwargs); answers like kfp.Client would."""

    def __init__(self, pipeline_id=None, versions=(), schedules=(), fail=None):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._pipeline_id = pipeline_id
        self._versions = list(versions)
        self._schedules = list(schedules)
        self._fail = fail

    def _record(self, method, /, *args, **kwargs):
        if args:
            kwargs = {**kwargs, "_args": args}
        self.calls.append((method, kwargs))
        if self._fail == method:
            raise ApiException(status=401, reason="Unauthorized")

    def get_pipeline_id(self, name):
        self._record("get_pipeline_id", name)
        return self._pipeline_id

    def upload_pipeline(self, **kw):
        self._record("upload_pipeline", **kw)
        return SimpleNamespace(pipeline_id="p-new")

    def list_pipeline_versions(self, **kw):
        self._record("list_pipeline_versions", **kw)
        return SimpleNamespace(pipeline_versions=self._versions or None)

    def upload_pipeline_version(self, **kw):
        self._record("upload_pipeline_version", **kw)
        return SimpleNamespace(pipeline_version_id="v-new")

    def create_experiment(self, **kw):
        self._record("create_experiment", **kw)
        return SimpleNamespace(experiment_id="e-1")

    def run_pipeline(self, **kw):
        self._record("run_pipeline", **kw)
        return SimpleNamespace(run_id="r-1")

    def list_recurring_runs(self, **kw):
        self._record("list_recurring_runs", **kw)
        return SimpleNamespace(recurring_runs=self._schedules or None)

    def disable_recurring_run(self, recurring_run_id):
        self._record("disable_recurring_run", recurring_run_id)

    def create_recurring_run(self, **kw):
        self._record("create_recurring_run", **kw)
        # like KFP: the new schedule is listed, enabled, from now on
        self._schedules.append(SimpleNamespace(recurring_run_id="rr-1", status="ENABLED"))
        return SimpleNamespace(recurring_run_id="rr-1")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def kwargs(self, name: str) -> dict[str, Any]:
        return next(kw for n, kw in self.calls if n == name)


def _filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def test_first_submit_creates_pipeline_version_experiment_and_run():
    client = FakeClient()
    plan = SubmitPlan(PACKAGE, COMMIT, "slipway", {"dataset_version": "v1"}, namespace="team-a")
    result = submit_pipeline(client, plan)
    assert client.names() == [
        "get_pipeline_id",
        "upload_pipeline",
        "list_pipeline_versions",
        "upload_pipeline_version",
        "create_experiment",
        "run_pipeline",
    ]
    assert client.kwargs("get_pipeline_id") == {"_args": ("slipway-training",)}
    assert client.kwargs("upload_pipeline")["pipeline_name"] == "slipway-training"
    assert client.kwargs("upload_pipeline")["pipeline_package_path"] == "/tmp/p.yaml"
    assert client.kwargs("list_pipeline_versions") == {
        "pipeline_id": "p-new",
        "filter": _filter(COMMIT),
    }
    assert client.kwargs("upload_pipeline_version") == {
        "pipeline_package_path": "/tmp/p.yaml",
        "pipeline_version_name": COMMIT,
        "pipeline_id": "p-new",
    }
    assert client.kwargs("create_experiment") == {"name": "slipway", "namespace": "team-a"}
    assert client.kwargs("run_pipeline") == {
        "experiment_id": "e-1",
        "job_name": "slipway-training 0123456789ab",
        "params": {"dataset_version": "v1"},
        "pipeline_id": "p-new",
        "version_id": "v-new",
        "service_account": "slipway-pipeline",
    }
    assert (result.pipeline_id, result.version_id, result.version_created) == (
        "p-new",
        "v-new",
        True,
    )
    assert result.run_id == "r-1"
    assert result.recurring_run_id is None


def test_existing_pipeline_and_version_are_reused():
    client = FakeClient(pipeline_id="p-1", versions=[SimpleNamespace(pipeline_version_id="v-old")])
    result = submit_pipeline(client, SubmitPlan(PACKAGE, COMMIT, "slipway", upload_only=True))
    assert client.names() == ["get_pipeline_id", "list_pipeline_versions"]
    assert (result.pipeline_id, result.version_id, result.version_created) == (
        "p-1",
        "v-old",
        False,
    )
    assert result.experiment_id is None


def test_cron_replaces_the_enabled_schedule_of_the_same_name():
    client = FakeClient(
        pipeline_id="p-1",
        schedules=[
            SimpleNamespace(recurring_run_id="rr-old", status="ENABLED"),
            SimpleNamespace(recurring_run_id="rr-older", status="DISABLED"),
        ],
    )
    plan = SubmitPlan(PACKAGE, COMMIT, "slipway", {"dataset_version": "v2"}, cron="0 3 * * *")
    result = submit_pipeline(client, plan)
    assert client.names() == [
        "get_pipeline_id",
        "list_pipeline_versions",
        "upload_pipeline_version",
        "create_experiment",
        "create_recurring_run",
        "list_recurring_runs",
        "disable_recurring_run",
    ]
    assert client.kwargs("list_recurring_runs") == {
        "experiment_id": "e-1",
        "filter": _filter("slipway-training-schedule"),
        "page_size": 100,
    }
    # only the old enabled schedule: not the disabled one, not the one just created
    assert [kw for n, kw in client.calls if n == "disable_recurring_run"] == [
        {"_args": ("rr-old",)}
    ]
    recurring = client.kwargs("create_recurring_run")
    assert recurring["cron_expression"] == "0 0 3 * * *"
    assert recurring["job_name"] == "slipway-training-schedule"
    assert recurring["version_id"] == "v-new"
    assert recurring["pipeline_id"] == "p-1"
    assert recurring["max_concurrency"] == 1
    assert recurring["no_catchup"] is True
    assert recurring["enabled"] is True
    assert recurring["service_account"] == "slipway-pipeline"
    assert recurring["params"] == {"dataset_version": "v2"}
    assert result.disabled_schedules == ["rr-old"]
    assert result.recurring_run_id == "rr-1"
    assert result.run_id is None


def test_cron_whose_creation_fails_leaves_the_old_schedule_enabled():
    client = FakeClient(
        pipeline_id="p-1",
        schedules=[SimpleNamespace(recurring_run_id="rr-old", status="ENABLED")],
        fail="create_recurring_run",
    )
    plan = SubmitPlan(PACKAGE, COMMIT, "slipway", cron="0 3 * * *")
    with pytest.raises(SubmitError, match="refused to create the recurring run: 401"):
        submit_pipeline(client, plan)
    assert client.names()[-1] == "create_recurring_run"
    assert "disable_recurring_run" not in client.names()


def test_cron_whose_disable_fails_names_the_schedule_it_created():
    client = FakeClient(
        pipeline_id="p-1",
        schedules=[SimpleNamespace(recurring_run_id="rr-old", status="ENABLED")],
        fail="disable_recurring_run",
    )
    plan = SubmitPlan(PACKAGE, COMMIT, "slipway", cron="0 3 * * *")
    with pytest.raises(
        SubmitError, match=r"created schedule 'slipway-training-schedule' \(rr-1\)"
    ) as e:
        submit_pipeline(client, plan)
    assert "refused to disable the old schedule: 401" in str(e.value)
    assert "rerun the same command" in str(e.value)
    assert client.names()[-3:] == [
        "create_recurring_run",
        "list_recurring_runs",
        "disable_recurring_run",
    ]


def test_api_refusal_becomes_one_sentence_with_a_hint():
    client = FakeClient(fail="get_pipeline_id")
    with pytest.raises(SubmitError, match="refused to look up the pipeline: 401 Unauthorized") as e:
        submit_pipeline(client, SubmitPlan(PACKAGE, COMMIT, "slipway"))
    assert "--cookie authservice_session=" in str(e.value)
    assert client.names() == ["get_pipeline_id"]


def test_connect_passes_host_token_cookie_and_namespace(tmp_path):
    seen: list[dict[str, Any]] = []
    factory = lambda **kw: seen.append(kw) or "client"  # noqa: E731
    token_file = tmp_path / "token"
    token_file.write_text("sa-token\n")
    assert connect("https://kf/pipeline", token_path=token_file, client_factory=factory) == "client"
    connect(
        "https://kf/pipeline",
        cookie="authservice_session=abc",
        namespace="team-a",
        client_factory=factory,
    )
    assert seen == [
        {"host": "https://kf/pipeline", "existing_token": "sa-token", "cookies": None},
        {
            "host": "https://kf/pipeline",
            "existing_token": None,
            "cookies": "authservice_session=abc",
            "namespace": "team-a",
        },
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": None}, "no Kubeflow Pipelines endpoint: set SLIPWAY_KFP_HOST"),
        ({"host": "h", "token": "t", "cookie": "a=b"}, "not both"),
        ({"host": "h", "cookie": "abc"}, "must be NAME=VALUE"),
        ({"host": "h", "token_path": Path("/nonexistent/token")}, "cannot read the KFP token file"),
    ],
)
def test_connect_refuses_bad_input(kwargs, message):
    called = []
    with pytest.raises(ConfigError, match=message):
        connect(**kwargs, client_factory=lambda **kw: called.append(kw))
    assert called == []


def test_version_name_is_the_clean_commit():
    assert resolve_version_name(None, COMMIT) == COMMIT
    assert resolve_version_name("release-1", f"{COMMIT}-dirty") == "release-1"
    with pytest.raises(ConfigError, match="uncommitted changes"):
        resolve_version_name(None, f"{COMMIT}-dirty")
    with pytest.raises(ConfigError, match="no git commit known"):
        resolve_version_name(None, "unknown")
    with pytest.raises(ConfigError, match="must match"):
        resolve_version_name("bad name", COMMIT)


@pytest.mark.parametrize("explicit", ["release-1\n", "abc\n"])
def test_version_name_with_a_trailing_newline_is_refused(explicit):
    # `$` also matches before a final newline: a name read from a file can end in one
    with pytest.raises(ConfigError, match=r"version name '.*\\n' must match"):
        resolve_version_name(explicit, COMMIT)
    with pytest.raises(ConfigError, match="must match"):
        resolve_version_name(None, f"{COMMIT}\n")


def test_params_and_cron_parsing():
    allowed = ("dataset_version", "data_params")
    assert parse_params(["dataset_version=v1", 'data_params={"min_rows": 50}'], allowed) == {
        "dataset_version": "v1",
        "data_params": {"min_rows": 50},
    }
    with pytest.raises(ConfigError, match="not a pipeline parameter"):
        parse_params(["datset_version=v1"], allowed)
    with pytest.raises(ConfigError, match="must be KEY=VALUE"):
        parse_params(["v1"], allowed)
    assert to_kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert to_kfp_cron("30 0 3 * * 1-5") == "30 0 3 * * 1-5"
    with pytest.raises(ConfigError, match="not a cron expression"):
        to_kfp_cron("daily")


def test_read_package_checks_name_and_image(tmp_path):
    settings_image = "slipway-components:0.1.0"
    package = read_package(COMPILED, settings_image)
    assert package.name == "slipway-training"
    assert "dataset_version" in package.parameters
    with pytest.raises(ConfigError, match="but the settings give 'ecr/slipway-components:abc'"):
        read_package(COMPILED, "ecr/slipway-components:abc")
    bad = tmp_path / "x.yaml"
    bad.write_text("a: 1\n")
    with pytest.raises(ConfigError, match="is not a compiled pipeline"):
        read_package(bad, settings_image)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    for key in ("SLIPWAY_IMAGE_REGISTRY", "SLIPWAY_IMAGE_TAG", "SLIPWAY_KFP_HOST"):
        monkeypatch.delenv(key, raising=False)
    for key in ("KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_TOKEN", "KF_PIPELINES_COOKIE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLIPWAY_GIT_COMMIT", COMMIT)
    app = typer.Typer()
    submit_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `submit` a named sub-command
    return app


def test_cli_without_endpoint_says_how_to_set_one(cli):
    result = CliRunner().invoke(cli, ["submit", "--dataset-version", "v1"])
    assert result.exit_code == 1
    assert "no Kubeflow Pipelines endpoint: set SLIPWAY_KFP_HOST" in result.output


def test_cli_runs_with_the_fake_client(cli, monkeypatch):
    client = FakeClient(pipeline_id="p-1")
    seen: dict[str, Any] = {}

    def fake_connect(host, **kwargs):
        seen.update(kwargs, host=host)
        return client

    monkeypatch.setattr(orchestration, "connect", fake_connect)
    result = CliRunner().invoke(
        cli,
        [
            *("submit", "--host", "https://kf/pipeline", "--cookie", "authservice_session=x"),
            *("--namespace", "team-a", "--dataset-version", "v1", "--param", "dataset_rev=main"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["host"] == "https://kf/pipeline"
    assert seen["cookie"] == "authservice_session=x"
    assert seen["namespace"] == "team-a"
    assert client.kwargs("upload_pipeline_version")["pipeline_version_name"] == COMMIT
    assert client.kwargs("run_pipeline")["params"] == {
        "dataset_rev": "main",
        "dataset_version": "v1",
    }
    assert "started run r-1" in result.output


def test_cli_refuses_an_unknown_param_before_connecting(cli, monkeypatch):
    monkeypatch.setattr(orchestration, "connect", lambda *a, **k: pytest.fail("connected"))
    result = CliRunner().invoke(cli, ["submit", "--host", "h", "--param", "nope=1"])
    assert result.exit_code == 1
    assert "'nope' is not a pipeline parameter" in result.output


def test_recorded_calls_fit_the_real_kfp_client_signatures():
    """The fake must not drift from kfp.Client: every recorded call binds to the real method."""
    import inspect

    from kfp.client import Client  # as submit.connect imports it (import_kfp_sdk)

    client = FakeClient(schedules=[SimpleNamespace(recurring_run_id="rr-old", status="ENABLED")])
    submit_pipeline(client, SubmitPlan(PACKAGE, COMMIT, "slipway", cron="0 3 * * *"))
    submit_pipeline(client, SubmitPlan(PACKAGE, COMMIT, "slipway", {"dataset_version": "v1"}))
    assert len(client.calls) == 14
    for method, kwargs in client.calls:
        kwargs = dict(kwargs)
        args = kwargs.pop("_args", ())
        inspect.signature(getattr(Client, method)).bind(None, *args, **kwargs)
    built: list[dict[str, Any]] = []
    connect("h", token="t", namespace="ns", client_factory=lambda **kw: built.append(kw))
    inspect.signature(Client).bind(**built[0])
