"""Deploys the template into the emulator and applies what the emulator ignores.

The same template goes through the CloudFormation API (``create_stack``: moto's change sets
lose the outputs), as ``filegate deploy`` sends it: stored in the artifact bucket with its
comments and read by CloudFormation from its S3 URL (``ops.artifacts``). Then, read from
that template and resolved against the stack, the local stack applies what moto skips
(docs/local-mode.md): queue and bucket policies, alarms, SNS subscriptions, bucket
versioning, public access block, CORS and notifications,
the stack's tables in the local stack's DynamoDB process (``stack_tables``: moto's
CloudFormation makes them in the main emulator, which forwards every DynamoDB request) and
their point-in-time recovery; and it
disables the emulator's own event source mapping, which would otherwise consume messages
without running the code. The local event source mapping (``esm``) takes its place.
``adopt`` describes a stack that ``filegate deploy`` created in an empty local stack (its
deploy applied those gaps itself), for the supervisor to run. Its S3, SQS and DynamoDB calls
go through ``storage``, ``queues`` and ``ledger``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from filegate import template as cfn
from filegate.aws import Target, arn, partition
from filegate.errors import StackError, StorageError
from filegate.ledger import create_table, enable_point_in_time_recovery, latest_stream_arn
from filegate.local.stack_tables import create_table_request
from filegate.ops.artifacts import ArtifactStore
from filegate.ops.releases import FINGERPRINT_PARAMETER, function_fingerprint
from filegate.package import Package
from filegate.queues import MessageQueue
from filegate.storage import BucketOps

logger = logging.getLogger(__name__)

ESM_LOGICAL_ID = "IngestEventSourceMapping"
FUNCTION_LOGICAL_ID = "IngestFunction"


@dataclass(frozen=True)
class StackParameters:
    """The template's parameters as the local stack sets them."""

    bucket_name: str
    lambda_name: str
    table_name: str
    code_bucket: str
    code_key: str
    alert_email: str = ""

    def as_cfn(self) -> list[dict[str, str]]:
        values = {
            "BucketName": self.bucket_name,
            "LambdaName": self.lambda_name,
            "DynamoTableName": self.table_name,
            "CodeBucket": self.code_bucket,
            "CodeKey": self.code_key,
            "AlertEmail": self.alert_email,
        }
        # As `filegate deploy` computes it: a later deploy of the same code and configuration
        # then changes nothing (and publishes nothing, which Lambda would refuse).
        values[FINGERPRINT_PARAMETER] = function_fingerprint(cfn.load(), values, cfn.Resolver)
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


@dataclass(frozen=True)
class MappingConfig:
    """The event source mapping as the template declares it."""

    uuid: str
    queue_arn: str
    function_name: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int

    @property
    def function(self) -> str:
        """The function's name, whether the mapping names it, its ARN or an alias ARN."""
        return split_function(self.function_name)[0]

    @property
    def qualifier(self) -> str | None:
        """The alias (or version) the mapping invokes; None for the function itself."""
        return split_function(self.function_name)[1]


def split_function(name_or_arn: str) -> tuple[str, str | None]:
    """``name`` / ``arn:...:function:name[:qualifier]`` -> (name, qualifier or None)."""
    parts = name_or_arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6], (parts[7] if len(parts) > 7 else None)
    return parts[0], (parts[1] if len(parts) > 1 else None)


@dataclass(frozen=True)
class FunctionUrlConfig:
    """A function URL as the template declares it (served locally by ``gateway``)."""

    logical_id: str
    function_name: str
    auth_type: str
    cors: dict[str, Any]


@dataclass(frozen=True)
class ScheduleConfig:
    """An EventBridge rule of the template that runs one of its functions at a fixed rate."""

    logical_id: str
    rule_arn: str
    function_name: str
    rate_seconds: int


@dataclass(frozen=True)
class StreamMappingConfig:
    """An event source mapping on a DynamoDB stream, as the template declares it (the local
    one is ``streams.StreamMapping``)."""

    logical_id: str
    stream_arn: str
    function_name: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1  # -1: until the record expires
    on_failure_arn: str | None = None


@dataclass(frozen=True)
class Deployment:
    """What a deployed stack offers the rest of the local stack."""

    stack_name: str
    outputs: dict[str, str]
    mapping: MappingConfig
    parameters: StackParameters
    function_urls: list[FunctionUrlConfig] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    schedules: list[ScheduleConfig] = field(default_factory=list)
    stream_mappings: list[StreamMappingConfig] = field(default_factory=list)


class Provisioner:
    """Creates the stack in the emulator and makes it behave like the real one."""

    def __init__(self, target: Target, stack_name: str) -> None:
        self._target = target
        self._stack_name = stack_name
        self._cfn = target.client("cloudformation")

    def upload_package(self, package: Package, bucket: str, key: str) -> None:
        s3 = BucketOps(self._target.client("s3"))
        try:
            s3.create_bucket(bucket, self._target.region)
        except StorageError as exc:
            raise StackError(f"cannot create the artifact bucket {bucket}: {exc}") from exc
        s3.upload_file(bucket, key, package.path)

    def deploy(self, parameters: StackParameters) -> Deployment:
        document = cfn.load()
        self._create_stack(parameters)
        physical = self._physical_ids()
        values = {p["ParameterKey"]: p["ParameterValue"] for p in parameters.as_cfn()}
        resolver = self._resolver(document, values, physical)
        applied = _GapApplier(self._target, document, resolver, physical).apply_all()
        return Deployment(
            stack_name=self._stack_name,
            outputs=self.outputs(),
            mapping=_mapping_config(document, resolver, physical),
            parameters=parameters,
            function_urls=_function_urls(document, resolver),
            schedules=_schedules(document, resolver),
            stream_mappings=_stream_mappings(document, resolver),
            applied=applied,
        )

    def adopt(self) -> Deployment:
        """A stack someone else deployed (``filegate deploy`` into an empty local stack).

        That deploy applied what the emulator ignores (``reapply``); only the emulator's own
        event source mapping is disabled here again, since the local runner takes its place.
        """
        document = cfn.load()
        stack = self._cfn.describe_stacks(StackName=self._stack_name)["Stacks"][0]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        physical = self._physical_ids()
        resolver = self._resolver(document, values, physical)
        applied = _GapApplier(self._target, document, resolver, physical).apply_all(
            only=_mapping_ids(document)
        )
        return Deployment(
            stack_name=self._stack_name,
            outputs=self.outputs(),
            mapping=_mapping_config(document, resolver, physical),
            parameters=StackParameters(
                bucket_name=values["BucketName"],
                lambda_name=values["LambdaName"],
                table_name=values["DynamoTableName"],
                code_bucket=values["CodeBucket"],
                code_key=values["CodeKey"],
                alert_email=values.get("AlertEmail", ""),
            ),
            function_urls=_function_urls(document, resolver),
            schedules=_schedules(document, resolver),
            stream_mappings=_stream_mappings(document, resolver),
            applied=applied,
        )

    def reapply(self, changed: Collection[str]) -> list[str]:
        """After a stack update: apply again what the emulator ignores, for ``changed`` only.

        Only the resources the update touched (logical ids): an unchanged bucket keeps the
        notification it has now, as on AWS, so a paused intake stays paused. The emulator's
        own event source mapping is disabled again whatever changed (an update enables it).
        """
        document = cfn.load()
        stack = self._cfn.describe_stacks(StackName=self._stack_name)["Stacks"][0]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        physical = self._physical_ids()
        resolver = self._resolver(document, values, physical)
        applier = _GapApplier(self._target, document, resolver, physical)
        return applier.apply_all(only={*changed, *_mapping_ids(document)})

    def outputs(self) -> dict[str, str]:
        stack = self._cfn.describe_stacks(StackName=self._stack_name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _create_stack(self, parameters: StackParameters) -> None:
        # As `filegate deploy` sends it: stored in the artifact bucket, read through its S3 URL
        # (the emulator refuses a TemplateBody over 51,200 bytes, as CloudFormation does).
        template = ArtifactStore(self._target, parameters.code_bucket).upload_template(
            cfn.template_text()
        )
        try:
            self._cfn.create_stack(
                StackName=self._stack_name,
                TemplateURL=template.url,
                Parameters=parameters.as_cfn(),
                Capabilities=["CAPABILITY_NAMED_IAM"],
            )
        except ClientError as exc:
            raise StackError(f"cannot create stack {self._stack_name}: {exc}") from exc
        self._wait_complete()

    def _wait_complete(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self._cfn.describe_stacks(StackName=self._stack_name)["Stacks"][0][
                "StackStatus"
            ]
            if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
                return
            if status.endswith(("_FAILED", "ROLLBACK_COMPLETE")):
                raise StackError(f"stack {self._stack_name} ended in {status}")
            time.sleep(0.2)
        raise StackError(f"stack {self._stack_name} did not complete within {timeout:.0f}s")

    def _physical_ids(self) -> dict[str, str]:
        described = self._cfn.describe_stack_resources(StackName=self._stack_name)
        # Resources the emulator skips appear as blank entries: leave them out.
        return {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for r in described["StackResources"]
            if "LogicalResourceId" in r
        }

    def _resolver(
        self, document: Mapping[str, Any], parameters: Mapping[str, str], physical: dict[str, str]
    ) -> cfn.Resolver:
        account = self._target.client("sts").get_caller_identity()["Account"]
        # Template defaults first, then what the stack was given, as CloudFormation does.
        refs = {
            name: str(spec["Default"])
            for name, spec in document.get("Parameters", {}).items()
            if "Default" in spec
        }
        refs.update(parameters)
        refs.update({k: v for k, v in physical.items() if v})
        refs.update(
            {
                "AWS::Region": self._target.region,
                "AWS::AccountId": account,
                "AWS::Partition": partition(self._target.region),
                "AWS::StackName": self._stack_name,
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        types = {name: r["Type"] for name, r in document["Resources"].items()}
        lookup = _AttributeLookup(self._target, types, physical, refs)
        return cfn.Resolver(document, refs, lookup)


class _AttributeLookup:
    """Fn::GetAtt for the resource types the template uses, answered by the emulator."""

    def __init__(
        self, target: Target, types: dict[str, str], physical: dict[str, str], refs: Any
    ) -> None:
        self._target = target
        self._types = types
        self._physical = physical
        self._refs = refs

    def __call__(self, logical_id: str, attribute: str) -> str:
        kind = self._types.get(logical_id)
        physical = self._physical.get(logical_id, "")
        if kind is None:
            raise StackError(f"cannot resolve !GetAtt {logical_id}.{attribute}: no such resource")
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            # The stream of the table in the DynamoDB process (stack_tables), not moto's copy.
            return latest_stream_arn(self._target.client("dynamodb"), physical)
        arn = self._arn(kind, physical) if attribute == "Arn" else None
        answers = {
            "QueueUrl": physical,
            "QueueName": physical.rsplit("/", 1)[-1],
            "TopicArn": physical,
            "TopicName": physical.rsplit(":", 1)[-1],
            "KeyId": physical,
        }
        value = arn or answers.get(attribute)
        if not value:
            raise StackError(f"cannot resolve !GetAtt {logical_id}.{attribute} locally")
        return value

    def _arn(self, kind: str, physical: str) -> str:
        region, account = self._target.region, self._refs["AWS::AccountId"]
        arns: dict[str, Callable[[], str]] = {
            "AWS::SQS::Queue": lambda: arn("sqs", region, physical.rsplit("/", 1)[-1], account),
            "AWS::S3::Bucket": lambda: arn("s3", region, physical, regional=False),
            "AWS::SNS::Topic": lambda: physical,
            "AWS::Lambda::Function": lambda: arn("lambda", region, f"function:{physical}", account),
            "AWS::DynamoDB::Table": lambda: arn("dynamodb", region, f"table/{physical}", account),
            "AWS::KMS::Key": lambda: arn("kms", region, f"key/{physical}", account),
            "AWS::IAM::Role": lambda: arn("iam", region, f"role/{physical}", account, False),
            "AWS::Logs::LogGroup": lambda: arn("logs", region, f"log-group:{physical}:*", account),
            "AWS::Events::Rule": lambda: arn("events", region, f"rule/{physical}", account),
            "AWS::Events::EventBus": lambda: arn(
                "events", region, "event-bus/" + physical, account
            ),
        }
        if kind not in arns:
            raise StackError(f"cannot resolve the Arn of a {kind} locally")
        return arns[kind]()


class _GapApplier:
    """Applies, through the service APIs, the template parts the emulator ignores."""

    def __init__(
        self,
        target: Target,
        document: Mapping[str, Any],
        resolver: cfn.Resolver,
        physical: dict[str, str],
    ) -> None:
        self._target = target
        self._resources: dict[str, Any] = document["Resources"]
        self._resolver = resolver
        self._physical = physical

    def apply_all(self, only: Collection[str] | None = None) -> list[str]:
        """Apply in dependency order (to the ``only`` logical ids, if given); say what."""
        applied: list[str] = []
        # Tables first: a stream mapping's source is a table's stream in the DynamoDB process.
        steps: list[tuple[str, Callable[[str, dict[str, Any]], str | None]]] = [
            ("AWS::DynamoDB::Table", self._table),
            ("AWS::Lambda::EventSourceMapping", self._disable_mapping),
            ("AWS::SQS::QueuePolicy", self._queue_policy),
            ("AWS::S3::BucketPolicy", self._bucket_policy),
            ("AWS::SNS::Subscription", self._subscription),
            ("AWS::CloudWatch::Alarm", self._alarm),
            ("AWS::S3::Bucket", self._bucket),
        ]
        for kind, step in steps:
            for logical_id, properties in self._of_type(kind):
                if only is not None and logical_id not in only:
                    continue
                line = step(logical_id, properties)
                if line:
                    applied.append(line)
                    logger.debug("applied %s", line)
        return applied

    def _of_type(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for logical_id, resource in self._resources.items():
            if resource.get("Type") != kind:
                continue
            condition = resource.get("Condition")
            if condition and not self._resolver.condition(condition):
                continue
            found.append((logical_id, self._resolver.resolve(resource.get("Properties", {}))))
        return found

    def _disable_mapping(self, logical_id: str, _: dict[str, Any]) -> str:
        uuid = self._physical.get(logical_id, "")
        self._target.client("lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
        return f"{logical_id}: emulator mapping disabled (the local runner replaces it)"

    def _queue_policy(self, logical_id: str, properties: dict[str, Any]) -> str:
        sqs = self._target.client("sqs")
        for queue_url in properties["Queues"]:
            MessageQueue(queue_url, sqs).set_policy(properties["PolicyDocument"])
        return f"{logical_id}: queue policy set"

    def _bucket_policy(self, logical_id: str, _: dict[str, Any]) -> str:
        # The emulator enforces bucket policies, and it serves plain HTTP on 127.0.0.1: the
        # template's deny-non-TLS statement would refuse every local request. Not applied.
        return f"{logical_id}: not applied locally (it denies non-TLS; the emulator is HTTP)"

    def _subscription(self, logical_id: str, properties: dict[str, Any]) -> str:
        self._target.client("sns").subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=properties["Endpoint"],
        )
        return f"{logical_id}: {properties['Protocol']} subscription created"

    def _table(self, logical_id: str, properties: dict[str, Any]) -> str | None:
        dynamodb, name = self._target.client("dynamodb"), self._physical[logical_id]
        created = create_table(dynamodb, create_table_request(name, properties))
        done = [f"table {name} created in the DynamoDB process"] if created else []
        if properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            enable_point_in_time_recovery(dynamodb, name)
            done.append("point-in-time recovery enabled")
        return f"{logical_id}: {', '.join(done)}" if done else None

    def _alarm(self, logical_id: str, properties: dict[str, Any]) -> str:
        arguments = dict(properties)
        arguments.setdefault(
            "AlarmName", f"{self._resolver.resolve({'Ref': 'AWS::StackName'})}-{logical_id}"
        )
        arguments["Threshold"] = float(arguments["Threshold"])
        for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if number in arguments:
                arguments[number] = int(arguments[number])
        if "ActionsEnabled" in arguments:
            arguments["ActionsEnabled"] = str(arguments["ActionsEnabled"]).lower() == "true"
        self._target.client("cloudwatch").put_metric_alarm(**arguments)
        return f"{logical_id}: alarm {arguments['AlarmName']} created"

    def _bucket(self, logical_id: str, properties: dict[str, Any]) -> str:
        s3 = BucketOps(self._target.client("s3"))
        bucket = self._physical[logical_id]
        if "VersioningConfiguration" in properties:
            s3.put_versioning(bucket, properties["VersioningConfiguration"])
        if "PublicAccessBlockConfiguration" in properties:
            s3.block_public_access(bucket, _booleans(properties["PublicAccessBlockConfiguration"]))
        if "CorsConfiguration" in properties:
            s3.put_cors(bucket, bucket_cors(properties["CorsConfiguration"]))
        notification = properties.get("NotificationConfiguration", {})
        if notification:
            s3.put_notification_configuration(bucket, bucket_notification(notification))
        return f"{logical_id}: versioning, public access block, CORS and notifications applied"


def _mapping_ids(document: Mapping[str, Any]) -> set[str]:
    """The logical ids of every event source mapping (the emulator's are disabled)."""
    return {
        logical_id
        for logical_id, resource in document["Resources"].items()
        if resource.get("Type") == "AWS::Lambda::EventSourceMapping"
    }


def _booleans(values: Mapping[str, Any]) -> dict[str, bool]:
    return {key: str(value).lower() == "true" for key, value in values.items()}


def bucket_cors(cfn_cors: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's CorsConfiguration shape -> the S3 API's shape."""
    renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
    rules = []
    for rule in cfn_cors.get("CorsRules", []):
        api_rule = {renamed.get(name, name): value for name, value in rule.items()}
        if "MaxAgeSeconds" in api_rule:
            api_rule["MaxAgeSeconds"] = int(api_rule["MaxAgeSeconds"])
        rules.append(api_rule)
    return {"CORSRules": rules}


def bucket_notification(cfn_notification: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration shape -> the S3 API's shape."""
    queues = []
    for index, entry in enumerate(cfn_notification.get("QueueConfigurations", [])):
        api_entry: dict[str, Any] = {
            "Id": f"filegate-{index}",
            "QueueArn": entry["Queue"],
            "Events": [entry["Event"]],
        }
        rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
        if rules:
            api_entry["Filter"] = {"Key": {"FilterRules": rules}}
        queues.append(api_entry)
    return {"QueueConfigurations": queues}


def _mapping_config(
    document: Mapping[str, Any], resolver: cfn.Resolver, physical: dict[str, str]
) -> MappingConfig:
    resource = document["Resources"].get(ESM_LOGICAL_ID)
    if resource is None:
        raise StackError(f"the template has no {ESM_LOGICAL_ID} resource")
    properties = resolver.resolve(resource["Properties"])
    scaling = properties.get("ScalingConfig", {})
    return MappingConfig(
        uuid=physical.get(ESM_LOGICAL_ID, ""),
        queue_arn=properties["EventSourceArn"],
        function_name=properties["FunctionName"],
        batch_size=int(properties.get("BatchSize", 10)),
        batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures"
        in properties.get("FunctionResponseTypes", []),
        maximum_concurrency=int(scaling.get("MaximumConcurrency", 2)),
    )


def _function_urls(document: Mapping[str, Any], resolver: cfn.Resolver) -> list[FunctionUrlConfig]:
    """Every AWS::Lambda::Url of the template, resolved (moto does not serve them)."""
    urls = []
    for logical_id, resource in document["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::Url":
            continue
        properties = resolver.resolve(resource["Properties"])
        urls.append(
            FunctionUrlConfig(
                logical_id=logical_id,
                function_name=str(properties["TargetFunctionArn"]).rsplit(":", 1)[-1],
                auth_type=str(properties.get("AuthType", "AWS_IAM")),
                cors=dict(properties.get("Cors", {})),
            )
        )
    return urls


def _stream_mappings(
    document: Mapping[str, Any], resolver: cfn.Resolver
) -> list[StreamMappingConfig]:
    """Every enabled event source mapping of the template on a DynamoDB stream (moto's never
    runs the code: ``streams`` reads the stream instead)."""
    found = []
    for logical_id, resource in document["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        properties = resolver.resolve(resource["Properties"])
        source = str(properties["EventSourceArn"])
        if ":dynamodb:" not in source or str(properties.get("Enabled", True)).lower() == "false":
            continue
        destination = properties.get("DestinationConfig", {}).get("OnFailure", {})
        found.append(
            StreamMappingConfig(
                logical_id=logical_id,
                stream_arn=source,
                function_name=split_function(str(properties["FunctionName"]))[0],
                starting_position=str(properties.get("StartingPosition", "TRIM_HORIZON")),
                batch_size=int(properties.get("BatchSize", 100)),
                bisect_on_error=str(properties.get("BisectBatchOnFunctionError")).lower() == "true",
                maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
                on_failure_arn=destination.get("Destination"),
            )
        )
    return found


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def _schedules(document: Mapping[str, Any], resolver: cfn.Resolver) -> list[ScheduleConfig]:
    """Every enabled ``rate(...)`` AWS::Events::Rule of the template that targets a function
    (moto stores rules, and never fires them)."""
    schedules = []
    for logical_id, resource in document["Resources"].items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resolver.resolve(resource["Properties"])
        rate = _RATE.match(str(properties.get("ScheduleExpression", "")))
        if rate is None or properties.get("State", "ENABLED") != "ENABLED":
            continue
        seconds = int(rate.group(1)) * _RATE_UNITS[rate.group(2).rstrip("s")]
        rule_arn = resolver.resolve({"Fn::GetAtt": [logical_id, "Arn"]})
        for target in properties.get("Targets", []):
            arn = str(target.get("Arn", ""))
            if ":function:" in arn:
                name = arn.split(":function:", 1)[1].split(":", 1)[0]
                schedules.append(ScheduleConfig(logical_id, str(rule_arn), name, seconds))
    return schedules
