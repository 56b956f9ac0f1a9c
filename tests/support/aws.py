"""Helpers for tests that talk to the moto server: clients, versioned buckets, S3 events, packages."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

REGION = "us-east-1"


def client(service: str, endpoint: str, **kwargs: Any) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=kwargs.pop("key", "testing"),
        aws_secret_access_key=kwargs.pop("secret", "testing"),
        **kwargs,
    )


def new_bucket(endpoint: str, versioned: bool = True, prefix: str = "slipway") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def new_idempotency_table(endpoint: str) -> str:
    """A table with exactly the schema of infra/slipway.yaml's IdempotencyTable."""
    name = f"efs-sync-{uuid.uuid4().hex[:12]}"
    client("dynamodb", endpoint).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def notify_queue(endpoint: str, bucket: str) -> str:
    """Send the bucket's models/*manifest.json ObjectCreated events to a new SQS queue.

    The same filter as the Lambda notification of infra/slipway.yaml; moto then produces the
    real S3 event payloads that the tests hand to the handler.
    """
    sqs = client("sqs", endpoint)
    url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    client("s3", endpoint).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "models/"},
                                {"Name": "suffix", "Value": "manifest.json"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    return url


def receive_events(endpoint: str, queue_url: str) -> list[dict[str, Any]]:
    """Every S3 event waiting in the queue (test events S3 sends on configuration skipped)."""
    sqs = client("sqs", endpoint)
    events = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return events
        for message in messages:
            body = json.loads(message["Body"])
            if "Records" in body:
                events.append(body)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def fake_package(model: str, version: str, payload: bytes | None = None) -> dict[str, bytes]:
    """A minimal valid package: the Lambda verifies files, it never deserialises them."""
    blob = payload if payload is not None else f"model bytes of {version}".encode() * 100
    manifest = {
        "format": 1,
        "model_name": model,
        "version_code": version,
        "files": {
            "model.skops": {
                "sha256": hashlib.sha256(blob).hexdigest(),
                "size": len(blob),
                "format": "skops",
            }
        },
    }
    return {"model.skops": blob, "manifest.json": json.dumps(manifest).encode()}


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context object that powertools reads."""

    function_name: str = "slipway-efs-sync"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:slipway-efs-sync"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000
