"""The efs-sync Lambda handler against a real moto_server over HTTP (S3, SQS, DynamoDB).

The S3 events are real payloads: moto sends them to an SQS queue through a bucket notification
with the same filter as the template (prefix models/, suffix manifest.json), and the tests hand
them to ``slipway.packaging.efs_sync.handler`` as Lambda would.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from slipway.errors import ConfigError, ModelPackageError
from slipway.packaging import efs, efs_sync
from slipway.packaging.efs import write_champion_marker
from slipway.packaging.store.s3 import S3ModelStore
from tests.support.aws import (
    FakeLambdaContext,
    client,
    fake_package,
    new_bucket,
    new_idempotency_table,
    notify_queue,
    receive_events,
)

pytestmark = pytest.mark.integration
MODEL = "slipway"
V1 = "v1-20261128-0123abcd"


@pytest.fixture
def env(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    bucket = new_bucket(aws_env)
    table = new_idempotency_table(aws_env)
    queue = notify_queue(aws_env, bucket)
    for key, value in {
        "SLIPWAY_STATE_DIR": str(tmp_path / "state"),
        "SLIPWAY_EFS_ROOT": str(tmp_path / "mnt" / "models"),
        "SLIPWAY_MODEL_STORE_URL": f"s3://{bucket}/models",
        "SLIPWAY_IDEMPOTENCY_TABLE": table,
        "SLIPWAY_AWS_ENDPOINT_URL": aws_env,
        "SLIPWAY_GIT_COMMIT": "test",
    }.items():
        monkeypatch.setenv(key, value)
    store = S3ModelStore.from_url(f"s3://{bucket}/models", aws_env)
    return SimpleNamespace(
        endpoint=aws_env,
        bucket=bucket,
        table=table,
        queue=queue,
        store=store,
        efs=tmp_path / "mnt" / "models" / MODEL,
    )


def publish(env: SimpleNamespace, version: str, payload: bytes | None = None) -> dict:
    """Upload a package through the store and return the one S3 event it raised."""
    env.store.put_package(MODEL, version, fake_package(MODEL, version, payload))
    events = receive_events(env.endpoint, env.queue)
    assert len(events) == 1, events  # only the manifest passes the notification filter
    return events[0]


def records(env: SimpleNamespace) -> list[dict]:
    return client("dynamodb", env.endpoint).scan(TableName=env.table)["Items"]


def on_efs(env: SimpleNamespace) -> list[str]:
    return sorted(p.name for p in env.efs.iterdir()) if env.efs.exists() else []


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the copy writes (the shared writer of slipway.packaging.efs)."""
    done: list[Path] = []
    real = efs.write_file

    def counting(path: Path, data: bytes) -> None:
        real(path, data)
        done.append(path)

    monkeypatch.setattr(efs, "write_file", counting)
    return done


def emf(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum of every metric in the EMF blobs the handler printed."""
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                sum(value) if isinstance(value, list) else value
            )
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Slipway"
    return totals


def test_event_delivered_three_times_makes_one_copy(env, writes, capsys) -> None:
    event = publish(env, V1)
    key = event["Records"][0]["s3"]["object"]["key"]
    assert key == f"models%2F{MODEL}%2F{V1}%2Fmanifest.json"  # moto URL-encodes, like S3

    results = [efs_sync.handler(event, FakeLambdaContext()) for _ in range(3)]

    assert results[0] == results[1] == results[2]
    first = results[0]["results"][0]
    assert first["path"] == str(env.efs / V1)
    assert first["created"] is True
    assert on_efs(env) == [V1]
    assert [p.name for p in writes] == ["model.skops", "manifest.json"]  # copied once
    assert (env.efs / V1 / "model.skops").read_bytes() == fake_package(MODEL, V1)["model.skops"]
    items = records(env)
    assert len(items) == 1
    assert items[0]["status"]["S"] == "COMPLETED"
    assert items[0]["id"]["S"].startswith("efs-sync#")
    metrics = emf(capsys)
    assert metrics["slipway_efs_sync_copied_total"] == 1
    assert "slipway_efs_sync_failures_total" not in metrics


def test_concurrent_deliveries_make_one_copy(env, writes, monkeypatch) -> None:
    event = publish(env, V1)
    slow_write = efs.write_file
    gate = threading.Event()

    def slowly(path: Path, data: bytes) -> None:
        gate.wait(2)  # hold the first copy open until both deliveries have started
        slow_write(path, data)

    monkeypatch.setattr(efs, "write_file", slowly)
    results: list[dict] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            results.append(efs_sync.handler(event, FakeLambdaContext()))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    threading.Timer(0.5, gate.set).start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert len(results) == 2
    assert on_efs(env) == [V1]
    assert [p.name for p in writes] == ["model.skops", "manifest.json"]
    assert len(records(env)) == 1
    statuses = sorted(r["results"][0].get("status", "copied") for r in results)
    assert statuses in (["copied", "in-progress"], ["copied", "copied"])
    # a later redelivery returns the recorded result
    assert efs_sync.handler(event, FakeLambdaContext())["results"][0]["created"] is True
    assert len(writes) == 2


def test_failure_in_the_middle_of_a_copy_leaves_nothing_and_a_retry_succeeds(
    env, monkeypatch, capsys
) -> None:
    event = publish(env, V1)
    real = efs.write_file
    calls: list[str] = []

    def fail_after_first(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(efs, "write_file", fail_after_first)
    with pytest.raises(OSError, match="No space left"):
        efs_sync.handler(event, FakeLambdaContext())
    assert calls == ["model.skops", "manifest.json"]
    assert not (env.efs / V1).exists()
    assert on_efs(env) == []  # no temporary folder left either
    assert records(env) == []  # powertools removes the in-progress record on failure
    assert emf(capsys)["slipway_efs_sync_failures_total"] == 1

    monkeypatch.setattr(efs, "write_file", real)
    result = efs_sync.handler(event, FakeLambdaContext())["results"][0]
    assert result["created"] is True
    assert (env.efs / V1 / "manifest.json").is_file()
    assert on_efs(env) == [V1]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: bytes([b[0] ^ 0x01]) + b[1:], "SHA-256"),
        (lambda b: b[: len(b) // 2], "truncated"),
    ],
    ids=["bit-flip", "truncated"],
)
def test_tampered_object_is_rejected_before_it_is_visible(
    env, capsys, damage, reason, caplog
) -> None:
    event = publish(env, V1)
    original = fake_package(MODEL, V1)["model.skops"]
    # a new object version over the package file, bypassing the store
    client("s3", env.endpoint).put_object(
        Bucket=env.bucket, Key=f"models/{MODEL}/{V1}/model.skops", Body=damage(original)
    )
    logging.getLogger("efs-sync").addHandler(caplog.handler)
    try:
        with pytest.raises(ModelPackageError, match=reason):
            efs_sync.handler(event, FakeLambdaContext())
    finally:
        logging.getLogger("efs-sync").removeHandler(caplog.handler)
    assert not (env.efs / V1).exists()
    assert on_efs(env) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("package rejected" in r.getMessage() and reason in r.getMessage() for r in errors)
    metrics = emf(capsys)
    assert metrics["slipway_efs_sync_rejected_total"] == 1
    assert metrics["slipway_efs_sync_failures_total"] == 1
    assert "slipway_efs_sync_copied_total" not in metrics


def test_the_event_s_manifest_version_is_read_not_a_later_one(env) -> None:
    """A manifest overwritten after the event (bypassing the store) does not get copied."""
    event = publish(env, V1)
    s3 = client("s3", env.endpoint)
    key = f"models/{MODEL}/{V1}/manifest.json"
    event["Records"][0]["s3"]["object"]["versionId"] = s3.head_object(Bucket=env.bucket, Key=key)[
        "VersionId"
    ]  # real S3 events carry it; moto's do not
    forged = fake_package(MODEL, V1, b"a forged model")
    s3.put_object(
        Bucket=env.bucket, Key=f"models/{MODEL}/{V1}/model.skops", Body=forged["model.skops"]
    )
    s3.put_object(Bucket=env.bucket, Key=key, Body=forged["manifest.json"])

    with pytest.raises(ModelPackageError, match=r"SHA-256|bytes"):
        efs_sync.handler(event, FakeLambdaContext())
    assert on_efs(env) == []


def test_retention_keeps_the_newest_ten_and_the_champion(env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SLIPWAY_EFS_KEEP_VERSIONS", "3")  # below revisionHistoryLimit: 10 kept
    versions = [f"v{n}-20261128-0123abcd" for n in range(1, 13)]
    for version in versions[:2]:
        efs_sync.handler(publish(env, version), FakeLambdaContext())
    write_champion_marker(env.store, MODEL, versions[1], 2)  # v2 is the champion
    for version in versions[2:]:
        efs_sync.handler(publish(env, version), FakeLambdaContext())

    kept = set(on_efs(env))
    assert kept == set(versions[2:]) | {versions[1]}  # newest 10 + champion v2; v1 pruned
    assert versions[0] not in kept
    assert emf(capsys)["slipway_efs_sync_pruned_total"] == 1


def test_without_a_champion_marker_nothing_is_deleted(env) -> None:
    versions = [f"v{n}-20261128-0123abcd" for n in range(1, 12)]
    for version in versions:
        result = efs_sync.handler(publish(env, version), FakeLambdaContext())["results"][0]
        assert result["champion"] is None
        assert result["pruned"] == []
    assert len(on_efs(env)) == 11


def test_records_outside_the_store_are_refused_or_ignored(env) -> None:
    event = publish(env, V1)
    other = json.loads(json.dumps(event))
    other["Records"][0]["s3"]["bucket"]["name"] = "someone-elses-bucket"
    with pytest.raises(ConfigError, match="someone-elses-bucket"):
        efs_sync.handler(other, FakeLambdaContext())
    stray = json.loads(json.dumps(event))
    stray["Records"][0]["s3"]["object"]["key"] = "models/slipway/champion.json"
    assert efs_sync.handler(stray, FakeLambdaContext()) == {"results": []}
    assert on_efs(env) == []


def test_missing_idempotency_table_setting_is_one_sentence(env, monkeypatch) -> None:
    monkeypatch.delenv("SLIPWAY_IDEMPOTENCY_TABLE")
    with pytest.raises(ConfigError, match="SLIPWAY_IDEMPOTENCY_TABLE"):
        efs_sync.handler(publish(env, V1), FakeLambdaContext())
