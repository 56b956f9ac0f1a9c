"""The model store on S3: create-only packages under ``s3://<bucket>/<prefix>/``.

Layout, as for the local store::

    s3://<bucket>/models/<model>/<version-code>/model.skops
    s3://<bucket>/models/<model>/<version-code>/manifest.json   <- written last: the commit marker
    s3://<bucket>/models/<model>/champion.json                  <- champion marker (overwritten)

Every package object is written with ``If-None-Match: *`` (S3 refuses with 412 when the key
exists) *and* after a check that the version's manifest is absent, so an existing version is
refused by name, never overwritten. Each object carries its SHA-256 as its S3 checksum
(``ChecksumSHA256``), so S3 rejects a corrupted upload and anyone can read the hash back with
``head-object --checksum-mode ENABLED``. The store refuses a bucket without versioning: with
versioning, even a write that bypasses the store leaves the original object recoverable.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from slipway.errors import (
    BucketVersioningError,
    ConfigError,
    ModelPackageError,
    RemoteUnavailableError,
    VersionExistsError,
)
from slipway.packaging.store.base import MANIFEST, ordered_files


def checksum_sha256(data: bytes) -> str:
    """The base64 SHA-256 that S3 stores as ``ChecksumSHA256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_s3_client(endpoint_url: str | None, region: str) -> Any:
    """A boto3 S3 client that fails fast: short connect timeout, two attempts."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 2},
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # a session of its own: the default session is not safe to share between threads
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


@contextmanager
def s3_errors(what: str, endpoint_url: str | None) -> Iterator[None]:
    """Turn botocore failures into one :class:`SlipwayError` sentence that says what to fix."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    where = endpoint_url or "the AWS S3 endpoint"
    try:
        yield
    except NoCredentialsError as e:
        raise RemoteUnavailableError(
            f"{what}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or an IAM role"
        ) from e
    except EndpointConnectionError as e:
        raise RemoteUnavailableError(
            f"{what}: cannot connect to {where}; check SLIPWAY_AWS_ENDPOINT_URL and the network"
        ) from e
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            raise RemoteUnavailableError(
                f"{what}: {where} rejected the AWS credentials ({code}); check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the role"
            ) from e
        if code in ("AccessDenied", "403"):
            raise RemoteUnavailableError(
                f"{what}: access denied by {where}; the role needs the model store permissions "
                "listed in docs/aws.md"
            ) from e
        if code == "NoSuchBucket":
            raise ConfigError(
                f"{what}: the bucket does not exist at {where}; check SLIPWAY_MODEL_STORE_URL"
            ) from e
        raise RemoteUnavailableError(f"{what}: S3 answered {code or e}") from e
    except BotoCoreError as e:  # timeouts, proxy and SSL errors
        raise RemoteUnavailableError(f"{what}: cannot reach {where}: {e}") from e


class S3ModelStore:
    """Model packages under ``s3://bucket/prefix``; implements :class:`slipway.packaging.store.base.ModelStore`."""

    def __init__(
        self, bucket: str, prefix: str, client: Any, endpoint_url: str | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_url(
        cls,
        url: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        check_versioning: bool = True,
    ) -> S3ModelStore:
        """Open ``s3://bucket/prefix`` and check that the bucket keeps object versions.

        Args:
            url: ``s3://bucket`` or ``s3://bucket/prefix``.
            endpoint_url: S3 endpoint (moto in tests); ``None`` for AWS.
            region: AWS region of the client.
            check_versioning: ``False`` only for readers without ``s3:GetBucketVersioning``
                (the ``efs-sync`` Lambda reads; it never writes packages).

        Raises:
            BucketVersioningError: versioning is not enabled (the message gives the command).
            RemoteUnavailableError: the endpoint is unreachable or refuses the credentials.
            ConfigError: the URL is malformed or the bucket does not exist.
        """
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise ConfigError(f"model store URL {url!r} is not of the form s3://bucket/prefix")
        bucket, _, prefix = url[5:].partition("/")
        store = cls(bucket, prefix, make_s3_client(endpoint_url, region), endpoint_url)
        if check_versioning:
            store.check_versioning()
        return store

    def check_versioning(self) -> None:
        """Check that the bucket has versioning enabled.

        Raises:
            BucketVersioningError: versioning is suspended or was never enabled.
            RemoteUnavailableError: the endpoint is unreachable or refuses the credentials.
        """
        with s3_errors(f"cannot open model store {self.url}", self.endpoint_url):
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            raise BucketVersioningError(
                f"bucket {self.bucket} of model store {self.url} has versioning "
                f"{(status or 'never enabled').lower()}; model packages need it: run `aws s3api "
                f"put-bucket-versioning --bucket {self.bucket} --versioning-configuration "
                "Status=Enabled`"
            )

    def key(self, model: str, version: str, name: str) -> str:
        """The object key of one package file: ``<prefix>/<model>/<version>/<name>``."""
        parts = [self.prefix, model, version, name] if self.prefix else [model, version, name]
        return "/".join(parts)

    def marker_key(self, model: str, name: str) -> str:
        """The object key of a per-model marker: ``<prefix>/<model>/<name>``."""
        return "/".join([self.prefix, model, name] if self.prefix else [model, name])

    def package_uri(self, model: str, version: str) -> str:
        """``s3://bucket/prefix/<model>/<version>``."""
        return f"{self.url}/{model}/{version}"

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with s3_errors(f"cannot read s3://{self.bucket}/{key}", self.endpoint_url):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None
                raise

    def exists(self, model: str, version: str) -> bool:
        """Whether the version's ``manifest.json`` object exists."""
        return self._head(self.key(model, version, MANIFEST)) is not None

    def put_package(self, model: str, version: str, files: Mapping[str, bytes]) -> str:
        """Upload the files, ``manifest.json`` last, each create-only with its SHA-256.

        Raises:
            VersionExistsError: the version's manifest, or a file with other content, exists.
        """
        ordered = ordered_files(files)
        uri = self.package_uri(model, version)
        if self.exists(model, version):
            raise VersionExistsError(
                f"model {model} version {version} already exists at {uri}; versions are "
                "immutable: promote a new version instead"
            )
        for name, data in ordered:
            self._put_create_only(self.key(model, version, name), data, model, version)
        return uri

    def _put_create_only(self, key: str, data: bytes, model: str, version: str) -> None:
        from botocore.exceptions import ClientError

        checksum = checksum_sha256(data)
        with s3_errors(f"cannot write s3://{self.bucket}/{key}", self.endpoint_url):
            try:
                answer = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    IfNoneMatch="*",
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "PreconditionFailed":
                    raise
                answer = None
        if answer is None:
            # 412: the key exists. An identical file left by an interrupted upload of this same
            # package is fine (objects under models/ cannot be deleted, so a retry must resume);
            # anything else is someone else's version.
            existing = self._head(key) or {}
            if key.endswith("/" + MANIFEST) or existing.get("ChecksumSHA256") != checksum:
                raise VersionExistsError(
                    f"model {model} version {version} already exists at "
                    f"s3://{self.bucket}/{key}; versions are immutable: promote a new version"
                )
            return
        stored = answer.get("ChecksumSHA256")
        if stored is not None and stored != checksum:
            raise ModelPackageError(
                f"S3 stored s3://{self.bucket}/{key} with SHA-256 {stored}, expected {checksum}"
            )

    def read(self, model: str, version: str, name: str, version_id: str | None = None) -> bytes:
        """The bytes of one package file (of one S3 object version when ``version_id`` is set)."""
        return self._get(self.key(model, version, name), version_id)

    def _get(self, key: str, version_id: str | None = None) -> bytes:
        from botocore.exceptions import ClientError

        extra = {"VersionId": version_id} if version_id else {}
        with s3_errors(f"cannot read s3://{self.bucket}/{key}", self.endpoint_url):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion"):
                    raise ModelPackageError(
                        f"model package file s3://{self.bucket}/{key} does not exist"
                    ) from e
                raise
            return body.read()

    def list_versions(self, model: str) -> list[str]:
        """Version codes of ``model`` whose manifest exists (complete packages only)."""
        base = self.marker_key(model, "")
        versions = []
        with s3_errors(f"cannot list {self.url}/{model}", self.endpoint_url):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    version, _, name = obj["Key"][len(base) :].partition("/")
                    if name == MANIFEST:
                        versions.append(version)
        return sorted(versions)

    def put_marker(self, model: str, name: str, data: bytes) -> str:
        """Write (overwrite) a small per-model marker such as ``champion.json``."""
        key = self.marker_key(model, name)
        with s3_errors(f"cannot write s3://{self.bucket}/{key}", self.endpoint_url):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum_sha256(data),
                ContentType="application/json",
            )
        return f"s3://{self.bucket}/{key}"

    def read_marker(self, model: str, name: str) -> bytes | None:
        """A marker's bytes, or ``None`` when it does not exist."""
        try:
            return self._get(self.marker_key(model, name))
        except ModelPackageError:
            return None
