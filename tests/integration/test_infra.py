"""infra/slipway.yaml: linted by cfn-lint, scanned by checkov, and its security-relevant shape.

cfn-lint and checkov are run for real (the binaries from the project's venv); a missing tool
fails the test. The structural tests read the template with cfn-lint's own YAML decoder, which
understands the short intrinsic tags (!Ref, !Sub, !GetAtt...).
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from tests.support import REPO

pytestmark = pytest.mark.integration

ROOT = REPO
TEMPLATE = ROOT / "infra" / "slipway.yaml"
VENV_BIN = Path(sys.executable).parent

# cfn-lint rules ignored anywhere (template Metadata or .cfnlintrc), each with its reason.
CFN_LINT_IGNORED: dict[str, str] = {}

# checkov checks skipped in the template: (check id, resource) -> why.
CHECKOV_SKIPS: dict[tuple[str, str], str] = {
    ("CKV_AWS_18", "AccessLogBucket"): "the access-log bucket cannot log to itself",
}

# Actions that have no resource type in IAM, so "Resource": "*" is the only form.
RESOURCELESS_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "cloudwatch:PutMetricData",
}

KMS_DATA_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}

# SLIPWAY_* variables of the Lambda that slipway.config.Settings does not declare yet
# (pydantic-settings silently ignores unknown variables, so a typo would go unnoticed).
NOT_YET_SETTINGS: set[str] = set()  # SLIPWAY_IDEMPOTENCY_TABLE became a setting


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} not found at {path}: run `make install` (it is a dev dependency)")
    return str(path)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name]["Properties"]


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy_document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    props = _props(resources, role)
    assert "ManagedPolicyArns" not in props, f"{role} must not attach managed policies"
    return [s for p in props.get("Policies", []) for s in _statements(p["PolicyDocument"])]


def _allowed_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])}


def _checkov(path: Path) -> dict[str, Any]:
    result = _run(
        [
            _tool("checkov"),
            "-f",
            str(path),
            "--framework",
            "cloudformation",
            "--skip-download",  # no network here: do not fetch the platform's guidelines
            "-o",
            "json",
        ]
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"checkov printed no JSON report: {result.stderr[-2000:]}") from e
    return report[0] if isinstance(report, list) else report


# ------------------------------------------------------------------------- linters


def test_cfn_lint_reports_no_error_and_no_warning() -> None:
    templates = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "infra").glob("*.yaml"))
    assert "infra/slipway.yaml" in templates
    result = _run([_tool("cfn-lint"), *templates])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_cfn_lint_ignores_only_documented_rules(template: dict[str, Any]) -> None:
    ignored = dict.fromkeys(
        template.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
    )
    for resource in template["Resources"].values():
        cfg = resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {})
        ignored.update(dict.fromkeys(cfg.get("ignore_checks", [])))
    rc = ROOT / ".cfnlintrc"
    if rc.exists():
        import yaml

        ignored.update(
            dict.fromkeys((yaml.safe_load(rc.read_text()) or {}).get("ignore_checks", []))
        )
    assert set(ignored) == set(CFN_LINT_IGNORED)


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint step can fail: an invalid runtime and a dangling !Ref are reported."""
    broken = TEMPLATE.read_text().replace("Runtime: python3.12", "Runtime: python9.99")
    broken = broken.replace("!Ref PrivateSubnetIdB", "!Ref NoSuchSubnet", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    result = _run([_tool("cfn-lint"), str(path)])
    assert result.returncode != 0
    assert "python9.99" in result.stdout
    assert "NoSuchSubnet" in result.stdout


def test_checkov_has_no_failed_check_and_only_documented_skips(template: dict[str, Any]) -> None:
    report = _checkov(TEMPLATE)
    summary = report["summary"]
    failed = [
        (c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 50, summary  # it really scanned the resources
    skipped = {
        (c["check_id"], c["resource"].split(".")[-1]) for c in report["results"]["skipped_checks"]
    }
    assert skipped == set(CHECKOV_SKIPS)
    # every skip in the template carries its reason
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert (skip["id"], name) in CHECKOV_SKIPS
            assert len(skip.get("comment", "")) > 20, f"{name}: {skip['id']} has no reason"
    for config in (".checkov.yaml", ".checkov.yml"):
        assert not (ROOT / config).exists(), f"skips belong in the template, not in {config}"


def test_checkov_catches_an_insecure_bucket(tmp_path: Path) -> None:
    """The scan can fail: suspended versioning and a public-ACL allowance are reported."""
    text = TEMPLATE.read_text()
    text = text.replace(
        "Status: Enabled\n      LoggingConfiguration",
        "Status: Suspended\n      LoggingConfiguration",
        1,
    )
    text = text.replace("BlockPublicAcls: true", "BlockPublicAcls: false")
    path = tmp_path / "insecure.yaml"
    path.write_text(text)
    report = _checkov(path)
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert ("CKV_AWS_21", "AWS::S3::Bucket.ArtifactBucket") in failed
    assert ("CKV_AWS_53", "AWS::S3::Bucket.ArtifactBucket") in failed


# ------------------------------------------------------------------------- S3


def _bucket_name_expression(resources: dict[str, Any]) -> str:
    return _props(resources, "ArtifactBucket")["BucketName"]["Fn::Sub"]


@pytest.mark.parametrize("bucket", ["ArtifactBucket", "AccessLogBucket"])
def test_buckets_are_versioned_private_and_owner_enforced(
    resources: dict[str, Any], bucket: str
) -> None:
    props = _props(resources, bucket)
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert resources[bucket]["DeletionPolicy"] == "Retain"


def test_artifact_bucket_uses_the_customer_key_logs_and_expires_noncurrent_versions(
    resources: dict[str, Any],
) -> None:
    props = _props(resources, "ArtifactBucket")
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert _props(resources, "DataKey")["EnableKeyRotation"] is True
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(
        r["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
        for r in rules
        if "NoncurrentVersionExpiration" in r
    )


@pytest.mark.parametrize(
    ("policy", "bucket"),
    [("ArtifactBucketPolicy", "ArtifactBucket"), ("AccessLogBucketPolicy", "AccessLogBucket")],
)
def test_bucket_policies_deny_insecure_transport(
    resources: dict[str, Any], policy: str, bucket: str
) -> None:
    props = _props(resources, policy)
    assert props["Bucket"] == {"Ref": bucket}
    denies = [
        s
        for s in _statements(props["PolicyDocument"])
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 1
    assert denies[0]["Resource"] == [
        {"Fn::GetAtt": [bucket, "Arn"]},
        {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
    ]


def test_model_packages_cannot_be_deleted(resources: dict[str, Any]) -> None:
    statements = _statements(_props(resources, "ArtifactBucketPolicy")["PolicyDocument"])
    (deny,) = [s for s in statements if s["Sid"] == "ModelPackagesAreImmutable"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert set(deny["Action"]) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    assert deny["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/models/*"}


def test_notification_sends_only_model_manifests_to_the_lambda(resources: dict[str, Any]) -> None:
    notification = _props(resources, "ArtifactBucket")["NotificationConfiguration"]
    assert set(notification) == {"LambdaConfigurations"}
    (config,) = notification["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Function"] == {"Fn::GetAtt": ["EfsSyncFunction", "Arn"]}
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "models/", "suffix": "manifest.json"}


def test_lambda_permission_is_bound_to_this_bucket_and_account(resources: dict[str, Any]) -> None:
    props = _props(resources, "EfsSyncInvokePermission")
    assert props["Principal"] == "s3.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The ARN is built from the bucket's name expression (a !Ref would be a cycle): they
    # must stay identical or S3 would be refused the invocation.
    name = _bucket_name_expression(resources)
    assert props["SourceArn"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}"}
    assert "EfsSyncInvokePermission" in resources["ArtifactBucket"]["DependsOn"]


# ------------------------------------------------------------------------- EFS


def test_file_system_is_encrypted_backed_up_and_tls_only(resources: dict[str, Any]) -> None:
    props = _props(resources, "ModelFileSystem")
    assert props["Encrypted"] is True
    assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert props["BackupPolicy"] == {"Status": "ENABLED"}
    statements = _statements(props["FileSystemPolicy"])
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    allowed = _allowed_actions(statements)
    assert "elasticfilesystem:ClientRootAccess" not in allowed


def test_access_point_pins_models_root_and_uid_10001(resources: dict[str, Any]) -> None:
    props = _props(resources, "ModelsAccessPoint")
    assert props["FileSystemId"] == {"Ref": "ModelFileSystem"}
    assert props["PosixUser"] == {"Uid": "10001", "Gid": "10001"}
    assert props["RootDirectory"] == {
        "Path": "/models",
        "CreationInfo": {"OwnerUid": "10001", "OwnerGid": "10001", "Permissions": "0755"},
    }


def test_mount_targets_in_two_subnets_and_nfs_only_from_lambda_and_eks(
    resources: dict[str, Any],
) -> None:
    targets = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EFS::MountTarget"]
    assert sorted(t["SubnetId"]["Ref"] for t in targets) == ["PrivateSubnetIdA", "PrivateSubnetIdB"]
    assert all(t["SecurityGroups"] == [{"Ref": "EfsSecurityGroup"}] for t in targets)
    assert "SecurityGroupIngress" not in _props(resources, "EfsSecurityGroup")
    ingress = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"] == {"Ref": "EfsSecurityGroup"}
    ]
    assert {(i["IpProtocol"], i["FromPort"], i["ToPort"]) for i in ingress} == {("tcp", 2049, 2049)}
    assert sorted(i["SourceSecurityGroupId"]["Ref"] for i in ingress) == [
        "EksNodeSecurityGroupId",
        "LambdaSecurityGroup",
    ]
    assert not any("CidrIp" in i for i in ingress)


# ------------------------------------------------------------------------- Lambda


def test_lambda_has_dlq_efs_vpc_tracing_and_reserved_concurrency(
    resources: dict[str, Any],
) -> None:
    function = resources["EfsSyncFunction"]
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == "slipway.packaging.efs_sync.handler"
    assert props["Code"] == {
        "S3Bucket": {"Ref": "LambdaCodeBucket"},
        "S3Key": {"Ref": "LambdaCodeKey"},
    }
    assert props["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": ["EfsSyncDeadLetterQueue", "Arn"]}
    }
    assert props["FileSystemConfigs"] == [
        {"Arn": {"Fn::GetAtt": ["ModelsAccessPoint", "Arn"]}, "LocalMountPath": "/mnt/models"}
    ]
    assert sorted(function["DependsOn"]) == ["MountTargetA", "MountTargetB"]
    assert props["VpcConfig"]["SubnetIds"] == [
        {"Ref": "PrivateSubnetIdA"},
        {"Ref": "PrivateSubnetIdB"},
    ]
    assert props["VpcConfig"]["SecurityGroupIds"] == [{"Ref": "LambdaSecurityGroup"}]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["ReservedConcurrentExecutions"] == {"Ref": "LambdaReservedConcurrency"}
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "EfsSyncLogGroup"}
    queue = _props(resources, "EfsSyncDeadLetterQueue")
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}


def test_lambda_environment_matches_settings_and_mount(resources: dict[str, Any]) -> None:
    from slipway.config import Settings

    env = _props(resources, "EfsSyncFunction")["Environment"]["Variables"]
    assert env["SLIPWAY_EFS_ROOT"] == "/mnt/models"
    assert env["SLIPWAY_EFS_KEEP_VERSIONS"] == {"Ref": "EfsKeepVersions"}
    assert env["SLIPWAY_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "efs-sync"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Slipway"
    bucket = _bucket_name_expression(resources)
    assert env["SLIPWAY_MODEL_STORE_URL"] == {"Fn::Sub": f"s3://{bucket}/models"}
    for name in env:
        if not name.startswith("SLIPWAY_"):
            continue
        field = name.removeprefix("SLIPWAY_").lower()
        if name in NOT_YET_SETTINGS:
            assert field not in Settings.model_fields, (
                f"{name} is a setting now: drop it from NOT_YET_SETTINGS"
            )
        else:
            assert field in Settings.model_fields, f"{name} is not a slipway.config.Settings field"


def test_log_group_is_the_functions_encrypted_and_retained(resources: dict[str, Any]) -> None:
    props = _props(resources, "EfsSyncLogGroup")
    function_name = _props(resources, "EfsSyncFunction")["FunctionName"]["Fn::Sub"]
    assert props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{function_name}"}
    assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_idempotency_table_has_the_powertools_default_schema(resources: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters
    key_attr, expiry_attr = defaults["key_attr"].default, defaults["expiry_attr"].default
    assert (key_attr, expiry_attr) == ("id", "expiration")
    props = _props(resources, "IdempotencyTable")
    assert props["KeySchema"] == [{"AttributeName": key_attr, "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": key_attr, "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": expiry_attr, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


# ------------------------------------------------------------------------- IAM


def test_no_role_allows_wildcard_actions_or_unscoped_resources(resources: dict[str, Any]) -> None:
    roles = [n for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 6
    for role in roles:
        for s in _role_statements(resources, role):
            actions = _as_list(s["Action"])
            assert not any("*" in a for a in actions), (role, actions)
            if "*" in _as_list(s["Resource"]):
                assert set(actions) <= RESOURCELESS_ACTIONS, (role, actions)


def test_efs_sync_role_is_least_privilege(resources: dict[str, Any]) -> None:
    statements = _role_statements(resources, "EfsSyncRole")
    by_sid = {s["Sid"]: s for s in statements}
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    assert s3 == [by_sid["ReadModelPackages"]]
    assert set(s3[0]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    bucket = _bucket_name_expression(resources)
    assert s3[0]["Resource"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}/models/*"}
    efs = by_sid["MountModelsAccessPoint"]
    assert set(efs["Action"]) == {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}
    assert efs["Resource"] == {"Fn::GetAtt": ["ModelFileSystem", "Arn"]}
    assert efs["Condition"] == {
        "StringEquals": {
            "elasticfilesystem:AccessPointArn": {"Fn::GetAtt": ["ModelsAccessPoint", "Arn"]}
        }
    }
    assert by_sid["DeadLetters"]["Action"] == "sqs:SendMessage"
    assert set(by_sid["IdempotencyRecords"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert "kms:Decrypt" in _allowed_actions(statements)
    assert "elasticfilesystem:ClientRootAccess" not in _allowed_actions(statements)


def test_serving_role_has_no_permissions_at_all(resources: dict[str, Any]) -> None:
    props = _props(resources, "ServingRole")
    assert "Policies" not in props
    assert not any(
        a.startswith("s3:") for a in _allowed_actions(_role_statements(resources, "ServingRole"))
    )


def test_mirror_role_may_only_put_metrics_in_the_slipway_namespace(
    resources: dict[str, Any],
) -> None:
    statements = _role_statements(resources, "MirrorRole")
    assert _allowed_actions(statements) == {"cloudwatch:PutMetricData"}
    (statement,) = statements
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Slipway"}}


def test_guard_role_rewrites_only_champion_markers_and_reads_only_its_alarm_queue(
    resources: dict[str, Any],
) -> None:
    statements = _role_statements(resources, "GuardRole")
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"ReadWriteChampionMarker", "UseTheDataKey", "ReadKpiAlarmQueue"}
    marker = by_sid["ReadWriteChampionMarker"]
    assert set(marker["Action"]) == {"s3:GetObject", "s3:PutObject"}
    assert marker["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/models/*/champion.json"}
    queue = by_sid["ReadKpiAlarmQueue"]
    assert set(queue["Action"]) == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    assert queue["Resource"] == {"Fn::GetAtt": ["GuardAlarmQueue", "Arn"]}
    assert set(by_sid["UseTheDataKey"]["Action"]) == KMS_DATA_ACTIONS
    assert not any(a.endswith(("Delete*", "DeleteObject")) for a in _allowed_actions(statements))


def test_guard_alarm_queue_takes_only_the_alarm_topics_rollback_kpi_alarms(
    resources: dict[str, Any],
) -> None:
    from slipway.monitoring import guard_alarm_filter_policy, load_kpi_catalog

    queue = _props(resources, "GuardAlarmQueue")
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    key_statements = _props(resources, "DataKey")["KeyPolicy"]["Statement"]
    (sns_key,) = [s["Fn::If"][1] for s in key_statements if "Fn::If" in s]
    assert sns_key["Principal"] == {"Service": "sns.amazonaws.com"}
    assert set(sns_key["Action"]) == KMS_DATA_ACTIONS
    assert sns_key["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlarmTopicArn"}}}
    subscription = resources["GuardAlarmSubscription"]
    assert subscription["Condition"] == "HasAlarmTopic"
    props = subscription["Properties"]
    assert props["TopicArn"] == {"Ref": "AlarmTopicArn"}
    assert (props["Protocol"], props["FilterPolicyScope"]) == ("sqs", "MessageBody")
    catalog = load_kpi_catalog(ROOT / "monitoring" / "kpis.yaml")
    # the template lists the rollback KPIs' alarms by hand: it must follow the catalog
    assert sorted(props["FilterPolicy"]["AlarmName"]) == sorted(
        guard_alarm_filter_policy(catalog)["AlarmName"]
    )
    (statement,) = _props(resources, "GuardAlarmQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlarmTopicArn"}}}


def test_pipeline_role_uploads_models_but_never_deletes(resources: dict[str, Any]) -> None:
    statements = _role_statements(resources, "PipelineRole")
    actions = _allowed_actions(statements)
    assert not any("Delete" in a for a in actions)
    assert actions == {
        "s3:ListBucket",
        "s3:GetBucketVersioning",
        "s3:GetObject",
        "s3:PutObject",
        *KMS_DATA_ACTIONS,
    }
    bucket_level = {"s3:ListBucket", "s3:GetBucketVersioning"}
    object_access = {
        r["Fn::Sub"]: set(_as_list(s["Action"]))
        for s in statements
        if s["Sid"] != "UseTheDataKey" and not set(_as_list(s["Action"])) <= bucket_level
        for r in _as_list(s["Resource"])
    }
    assert object_access == {
        "${ArtifactBucket.Arn}/dvc/*": {"s3:GetObject", "s3:PutObject"},
        "${ArtifactBucket.Arn}/mlflow/*": {"s3:GetObject", "s3:PutObject"},
        "${ArtifactBucket.Arn}/kfp/*": {"s3:GetObject", "s3:PutObject"},
        "${ArtifactBucket.Arn}/models/*": {"s3:GetObject", "s3:PutObject"},
    }
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert sorted(p for p in prefixes if p.endswith("/*")) == [
        "dvc/*",
        "kfp/*",
        "mlflow/*",
        "models/*",
    ]
    # the S3 model store checks that the bucket keeps versions before it writes
    (versioning,) = [s for s in statements if s["Action"] == "s3:GetBucketVersioning"]
    assert versioning["Resource"] == {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}


def test_mlflow_role_reaches_only_the_mlflow_prefix(resources: dict[str, Any]) -> None:
    statements = _role_statements(resources, "MlflowServerRole")
    object_resources = {
        r["Fn::Sub"]
        for s in statements
        if any(a.startswith("s3:") and a != "s3:ListBucket" for a in _as_list(s["Action"]))
        for r in _as_list(s["Resource"])
    }
    assert object_resources == {"${ArtifactBucket.Arn}/mlflow/*"}


def _render_trust(sub: Any, issuer: str, template: dict[str, Any]) -> dict[str, Any]:
    """Resolve the !Sub [json, {Issuer: ...}] trust policy as CloudFormation would."""
    text, variables = sub["Fn::Sub"]
    assert set(variables) == {"Issuer"}
    values = {
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "Issuer": issuer,
        **{k: v.get("Default", "") for k, v in template["Parameters"].items()},
    }
    rendered = re.sub(r"\$\{([^}]+)\}", lambda m: str(values[m.group(1)]), text)
    return json.loads(rendered)


@pytest.mark.parametrize(
    ("role", "subject"),
    [
        ("PipelineRole", "system:serviceaccount:kubeflow-user-example-com:slipway-pipeline"),
        ("MlflowServerRole", "system:serviceaccount:mlflow:mlflow"),
        ("ServingRole", "system:serviceaccount:slipway:slipway-server"),
        ("MirrorRole", "system:serviceaccount:slipway-monitoring:slipway-mirror"),
        ("GuardRole", "system:serviceaccount:slipway-monitoring:slipway-guard"),
    ],
)
def test_irsa_trust_is_one_service_account_through_the_oidc_provider(
    resources: dict[str, Any], template: dict[str, Any], role: str, subject: str
) -> None:
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
    sub = _props(resources, role)["AssumeRolePolicyDocument"]
    assert sub["Fn::Sub"][1]["Issuer"] == {
        "Fn::Select": [1, {"Fn::Split": ["https://", {"Ref": "OidcIssuerUrl"}]}]
    }
    pattern = template["Parameters"]["OidcIssuerUrl"]["AllowedPattern"]
    assert re.fullmatch(pattern, f"https://{issuer}")
    (statement,) = _render_trust(sub, issuer, template)["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"
    }
    assert statement["Condition"] == {
        "StringEquals": {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}
    }


# ------------------------------------------------------------------------- interface


def test_parameters_are_documented_here_and_in_docs(template: dict[str, Any]) -> None:
    doc = (ROOT / "docs" / "aws.md").read_text()
    for name, parameter in template["Parameters"].items():
        assert len(parameter.get("Description", "")) > 20, f"{name} has no description"
        assert f"`{name}`" in doc, f"docs/aws.md does not document the parameter {name}"
    assert "## Local stand-ins" in doc


def test_outputs_expose_what_the_cluster_side_needs(template: dict[str, Any]) -> None:
    assert {
        "BucketName",
        "FileSystemId",
        "AccessPointId",
        "PipelineRoleArn",
        "MlflowServerRoleArn",
        "ServingRoleArn",
        "MirrorRoleArn",
        "GuardRoleArn",
        "GuardAlarmQueueUrl",
        "IdempotencyTableName",
        "DeadLetterQueueUrl",
    } <= set(template["Outputs"])
    assert template["Outputs"]["DeadLetterQueueUrl"]["Value"] == {"Ref": "EfsSyncDeadLetterQueue"}
