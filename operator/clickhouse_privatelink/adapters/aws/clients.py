"""boto3 clients per region and role, and what an AWS error means for a resource.

``AWS_ENDPOINT_URL`` (read by boto3 itself) points every client at a stand-in in tests and the sandbox.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from clickhouse_privatelink.constants import OPERATOR_NAME
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.metrics import record_aws_call

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_route53 import Route53Client

# Adaptive retries back off on RequestLimitExceeded/Throttling and pace calls client-side, which is what
# many resources sharing one account's EC2 and Route 53 token buckets need.
_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    user_agent_extra=OPERATOR_NAME,
    connect_timeout=10,
    read_timeout=30,
)


class AwsModels:
    """botocore's data (the EC2 and Route 53 service models, endpoint rules, partitions), loaded once for the
    process and shared by every session it makes.

    A botocore session loads them for its first clients: several MB of JSON, 0.3 s of CPU, on the event loop
    (the first pass of a region and role makes its clients). With one loader for every session they are loaded
    once, and ``warm`` loads them at start (in a thread), before any pass needs them.
    """

    SERVICES = ("ec2", "route53")

    def __init__(self) -> None:
        self.loader = botocore.loaders.create_loader()

    def warm(self) -> None:
        """Load now what every later client loads: by making one of each (explicit dummy credentials, so no
        credential lookup; a client makes no call until it is used)."""
        session = _botocore_session(self)
        for service in self.SERVICES:
            session.create_client(
                service, region_name="us-east-1", aws_access_key_id="load", aws_secret_access_key="load"
            )


class AwsClients:
    """EC2 and Route 53 clients for one region, optionally through an assumed role (made once per region and
    role by the operator's ``AwsGateways``; boto3 clients are thread-safe, sessions are not). ``models``: the
    process's shared botocore data (a session of its own loads them again)."""

    def __init__(self, region: str, role_arn: str | None = None, *, models: AwsModels | None = None) -> None:
        self.region = region
        self.role_arn = role_arn
        session = _session(role_arn, models)
        self.ec2: EC2Client = session.client("ec2", region_name=region, config=_CONFIG)
        self.route53: Route53Client = session.client("route53", region_name=region, config=_CONFIG)
        for service, client in (("ec2", self.ec2), ("route53", self.route53)):
            client.meta.events.register("after-call", functools.partial(_count_call, service))


def _count_call(service: str, http_response: Any, parsed: Mapping[str, Any], model: Any, **_: Any) -> None:
    """botocore's after-call hook: count each API call by operation and outcome (error code or HTTP status)."""
    code = parsed.get("Error", {}).get("Code") if isinstance(parsed, Mapping) else None
    record_aws_call(service, model.name, code or getattr(http_response, "status_code", "unknown"))


def _session(role_arn: str | None, models: AwsModels | None) -> boto3.Session:
    if role_arn is None:
        return boto3.Session(botocore_session=_botocore_session(models))
    base = _botocore_session(models)
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base.create_client,
        source_credentials=base.get_credentials(),
        role_arn=role_arn,
        extra_args={"RoleSessionName": OPERATOR_NAME},
    )
    assumed = _botocore_session(models)
    # Refreshable credentials renew the role's session before it expires, for a long-running process.
    # botocore has no public setter for refreshable credentials; this is the documented-by-use way.
    assumed._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    return boto3.Session(botocore_session=assumed)


def _botocore_session(models: AwsModels | None) -> botocore.session.Session:
    session = botocore.session.get_session()
    if models is not None:
        session.register_component("data_loader", models.loader)
    return session


@dataclass(frozen=True)
class AwsProblem:
    """What an AWS error means: the condition reason, a message for a person, and whether to retry soon."""

    reason: Reason
    message: str
    retryable: bool
    code: str


_INVALID_CONFIGURATION = {
    "InvalidSubnetID.NotFound",
    "InvalidSubnetId.NotFound",
    "InvalidSubnet",
    "InvalidSubnetID.Malformed",
    "InvalidGroup.NotFound",
    "InvalidGroupId.Malformed",
    "InvalidSecurityGroupID.NotFound",
    "InvalidVpcID.NotFound",
    "InvalidVpcId.Malformed",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "DuplicateSubnetsInSameZone",
    "VpcEndpointLimitExceeded",
    "InvalidVPCId",
    "InvalidInput",
    "ConflictingDomainExists",
    "LimitsExceeded",
    "TooManyHostedZones",
}
_ACCESS_DENIED = {
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "InvalidClientTokenId",
}
_THROTTLED = {
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "TooManyRequestsException",
}


def classify(error: Exception) -> AwsProblem:
    """Map a boto3/botocore error to a condition reason (never including credentials)."""
    if isinstance(error, NoCredentialsError):
        return AwsProblem(
            Reason.AWS_ACCESS_DENIED, "no AWS credentials found for the operator", False, "NoCredentials"
        )
    if isinstance(error, ClientError):
        err: dict[str, Any] = dict(error.response.get("Error", {}))
        code = str(err.get("Code", "Unknown"))
        message = f"{code}: {err.get('Message', '')}".strip()
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "InvalidServiceName":
            return AwsProblem(
                Reason.INVALID_AWS_CONFIGURATION,
                f"{message}. AWS could not verify the ClickHouse endpoint service from this region "
                "('Service name could not be verified'): the region may not be supported, contact ClickHouse support",
                False,
                code,
            )
        if code in _THROTTLED:
            return AwsProblem(Reason.THROTTLED, message, True, code)
        if code in _ACCESS_DENIED:
            return AwsProblem(Reason.AWS_ACCESS_DENIED, message, False, code)
        if code == "NoSuchHostedZone":
            return AwsProblem(Reason.HOSTED_ZONE_NOT_FOUND, message, False, code)
        if code in _INVALID_CONFIGURATION:
            return AwsProblem(Reason.INVALID_AWS_CONFIGURATION, message, False, code)
        if status >= 500 or code in {"InternalError", "ServiceUnavailable", "Unavailable", "InternalFailure"}:
            return AwsProblem(Reason.UPSTREAM_UNAVAILABLE, message, True, code)
        return AwsProblem(Reason.INVALID_AWS_CONFIGURATION, message, False, code)
    if isinstance(error, BotoCoreError):
        return AwsProblem(
            Reason.UPSTREAM_UNAVAILABLE,
            f"AWS unreachable: {type(error).__name__}",
            True,
            type(error).__name__,
        )
    raise error


class AwsError(Exception):
    """An AWS call that failed, as the operator sees it: the AWS error code and what it means (``classify``).

    The gateway raises it instead of botocore's exceptions, so nothing past the gateway imports botocore.
    """

    def __init__(self, problem: AwsProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def reason(self) -> Reason:
        return self.problem.reason

    @property
    def message(self) -> str:
        return self.problem.message

    @classmethod
    def of(cls, error: ClientError | BotoCoreError) -> AwsError:
        return cls(classify(error))


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
