"""The S3 model store against a real moto_server over HTTP: layout, create-only writes, S3
checksums, the versioning requirement, and clear CLI errors for the three ways S3 goes wrong."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import typer
from typer.testing import CliRunner

from slipway.cli import efs as efs_cli
from slipway.errors import (
    BucketVersioningError,
    ConfigError,
    RemoteUnavailableError,
    VersionExistsError,
)
from slipway.packaging.store import store_at_url
from slipway.packaging.store.s3 import S3ModelStore
from tests.support.aws import client, fake_package, new_bucket
from tests.support.processes import VENV_BIN, free_port, running

pytestmark = pytest.mark.integration

V1 = "v1-20261128-0123abcd"
V2 = "v2-20261129-89abcdef"


def test_layout_checksums_and_manifest_written_last(aws_env: str) -> None:
    bucket = new_bucket(aws_env)
    store = store_at_url(f"s3://{bucket}/models", aws_env, "us-east-1")
    files = fake_package("slipway", V1)
    puts: list[dict] = []
    real_put = store.client.put_object
    store.client.put_object = lambda **kw: puts.append(kw) or real_put(**kw)
    assert store.put_package("slipway", V1, files) == f"s3://{bucket}/models/slipway/{V1}"

    # the commit marker comes last; every put is create-only and carries its SHA-256
    assert [p["Key"] for p in puts] == [
        f"models/slipway/{V1}/model.skops",
        f"models/slipway/{V1}/manifest.json",
    ]
    assert all(p["IfNoneMatch"] == "*" and p["ChecksumAlgorithm"] == "SHA256" for p in puts)
    s3 = client("s3", aws_env)
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(p["Key"] for p in puts)
    for name, data in files.items():
        head = s3.head_object(
            Bucket=bucket, Key=f"models/slipway/{V1}/{name}", ChecksumMode="ENABLED"
        )
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert store.exists("slipway", V1)
    assert not store.exists("slipway", V2)
    assert store.read("slipway", V1, "model.skops") == files["model.skops"]
    assert store.list_versions("slipway") == [V1]


def test_existing_version_is_refused_by_name_and_not_overwritten(aws_env: str) -> None:
    bucket = new_bucket(aws_env)
    store = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    store.put_package("slipway", V1, fake_package("slipway", V1))

    with pytest.raises(VersionExistsError, match=V1) as caught:
        store.put_package("slipway", V1, fake_package("slipway", V1, b"other model"))
    assert "immutable" in str(caught.value)
    versions = client("s3", aws_env).list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 2  # no second object version of either file
    assert store.read("slipway", V1, "model.skops") == fake_package("slipway", V1)["model.skops"]


def test_if_none_match_alone_refuses_a_racing_writer(aws_env: str) -> None:
    """Bypass the check-before-write (a writer that raced past it): S3 itself answers 412."""
    bucket = new_bucket(aws_env)
    store = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    store.put_package("slipway", V1, fake_package("slipway", V1))
    store.exists = lambda model, version: False  # type: ignore[method-assign]

    with pytest.raises(VersionExistsError, match=V1):
        store.put_package("slipway", V1, fake_package("slipway", V1, b"racing model"))
    versions = client("s3", aws_env).list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 2


def test_interrupted_upload_resumes_with_identical_files_only(aws_env: str) -> None:
    """models/ objects cannot be deleted, so a retry must resume over its own identical file."""
    bucket = new_bucket(aws_env)
    store = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    files = fake_package("slipway", V1)
    store._put_create_only(
        store.key("slipway", V1, "model.skops"), files["model.skops"], "slipway", V1
    )
    assert not store.exists("slipway", V1)  # no manifest: not a package yet

    store.put_package("slipway", V1, files)
    assert store.list_versions("slipway") == [V1]

    other = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    other._put_create_only(other.key("slipway", V2, "model.skops"), b"first attempt", "slipway", V2)
    with pytest.raises(VersionExistsError, match=V2):
        other.put_package("slipway", V2, fake_package("slipway", V2, b"different model"))


def test_bucket_without_versioning_is_refused_with_the_command(aws_env: str) -> None:
    bucket = new_bucket(aws_env, versioned=False)
    with pytest.raises(BucketVersioningError) as caught:
        S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    message = str(caught.value)
    assert f"aws s3api put-bucket-versioning --bucket {bucket}" in message
    assert "Status=Enabled" in message
    client("s3", aws_env).put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
    )
    with pytest.raises(BucketVersioningError, match="suspended"):
        S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)


def test_missing_bucket_and_bad_url_are_config_errors(aws_env: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        S3ModelStore.from_url("s3://no-such-bucket-here/models", aws_env)
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        S3ModelStore.from_url("s3:///models", aws_env)


# ------------------------------------------------------------------ CLI: one sentence, exit 1


@pytest.fixture(scope="module")
def auth_moto(tmp_path_factory: pytest.TempPathFactory):
    """A second moto server that checks credentials (the shared one accepts any)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    argv = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with running(argv, f"{url}/moto-api/", log, env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}):
        yield url


def _cli(env: dict[str, str], *args: str):
    app = typer.Typer()
    efs_cli.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keep efs-sync a named sub-command
    return CliRunner().invoke(app, ["efs-sync", *args], env=env)


def _assert_one_sentence(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = result.output.strip()
    assert "Traceback" not in text
    assert text.startswith("error:"), text
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text
    return text


def test_cli_bucket_without_versioning(aws_env: str, tmp_path) -> None:
    bucket = new_bucket(aws_env, versioned=False)
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path),
        "SLIPWAY_MODEL_STORE_URL": f"s3://{bucket}/models",
        "SLIPWAY_AWS_ENDPOINT_URL": aws_env,
    }
    _assert_one_sentence(_cli(env, V1), bucket, "put-bucket-versioning", "Status=Enabled")


def test_cli_unreachable_endpoint(aws_env: str, tmp_path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path),
        "SLIPWAY_MODEL_STORE_URL": "s3://any-bucket/models",
        "SLIPWAY_AWS_ENDPOINT_URL": closed,
    }
    _assert_one_sentence(_cli(env, V1), f"cannot connect to {closed}", "SLIPWAY_AWS_ENDPOINT_URL")


def test_cli_wrong_credentials(auth_moto: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path),
        "SLIPWAY_MODEL_STORE_URL": "s3://any-bucket/models",
        "SLIPWAY_AWS_ENDPOINT_URL": auth_moto,
    }
    _assert_one_sentence(_cli(env, V1), "rejected the AWS credentials", "InvalidAccessKeyId")


def test_cli_wrong_credentials_error_is_a_slipway_error(auth_moto: str) -> None:
    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id="AKIAWRONGWRONGWRONG0", aws_secret_access_key="wrong"
    ).client("s3", endpoint_url=auth_moto, region_name="us-east-1")
    store = S3ModelStore("any-bucket", "models", s3, auth_moto)
    with pytest.raises(RemoteUnavailableError, match="rejected the AWS credentials"):
        store.check_versioning()


def test_cli_syncs_the_champion_from_s3(aws_env: str, tmp_path) -> None:
    from slipway.packaging.efs import write_champion_marker

    bucket = new_bucket(aws_env)
    store = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    store.put_package("slipway", V1, fake_package("slipway", V1))
    write_champion_marker(store, "slipway", V1, 1)
    env = {
        "SLIPWAY_STATE_DIR": str(tmp_path),
        "SLIPWAY_MODEL_STORE_URL": f"s3://{bucket}/models",
        "SLIPWAY_AWS_ENDPOINT_URL": aws_env,
    }
    result = _cli(env)
    assert result.exit_code == 0, result.output
    assert f"slipway {V1} copied: {tmp_path / 'efs' / 'slipway' / V1}" in result.output
    marker = json.loads(store.read_marker("slipway", "champion.json"))
    assert marker["version_code"] == V1
    assert (tmp_path / "efs" / "slipway" / V1 / "model.skops").read_bytes() == fake_package(
        "slipway", V1
    )["model.skops"]
    again = _cli(env, V1)
    assert again.exit_code == 0
    assert "already present" in again.output
