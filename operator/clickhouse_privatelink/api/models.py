"""The ClickHousePrivateLink API as typed models: the single source of truth for the CRD."""

from __future__ import annotations

import datetime as dt
import unicodedata
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from clickhouse_privatelink.constants import (
    API_VERSION_SUFFIX,
    DEFAULT_API_URL,
    DEFAULT_KEY_ID_KEY,
    DEFAULT_KEY_SECRET_KEY,
    GROUP,
    TAG_NAME,
)

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$"

VPC_ID_PATTERN = r"^vpc-[0-9a-f]{8,17}$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]{8,17}$"
SECURITY_GROUP_ID_PATTERN = r"^sg-[0-9a-f]{8,17}$"
VPC_ENDPOINT_ID_PATTERN = r"^vpce-[0-9a-f]{8,17}$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
# AWS zone IDs start with Z; the pattern does not insist, as moto (our stand-in) issues IDs without it.
# Route 53's shape: "Z" and up to 31 upper-case letters and digits (e.g. Z0123456789ABCDEFGHIJ).
HOSTED_ZONE_ID_PATTERN = r"^Z[A-Z0-9]{1,31}$"
UUID_EXAMPLE = "123e4567-e89b-42d3-a456-426614174000"

IMMUTABLE = "self == oldSelf"

# AWS's tag character set (letters, separators such as space, digits and _ . : / = + - @), as RE2 (CEL) reads it.
TAG_CHARACTERS = r"^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]*$"
TAG_CHARACTERS_TEXT = "letters, digits, spaces and _ . : / = + - @"
TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX = 128, 256, 40


def _cel(rule: str, message: str, **extra: str) -> dict[str, JsonValue]:
    return {"rule": rule, "message": message, **extra}


def _shaped(
    pattern: str, message: str, max_length: int, *rules: dict[str, JsonValue]
) -> dict[str, JsonValue]:
    """Schema extras of a string with a ``pattern``: ``rules``, then a CEL rule repeating the pattern.

    kube-apiserver words a failed pattern as the raw regex; the rule's ``message`` says what is expected.
    maxLength (implied by the pattern) bounds the rule's estimated CEL cost, as kube-apiserver requires.
    """
    shape = _cel(f"self.matches('{pattern}')", message)
    return {"maxLength": max_length, "x-kubernetes-validations": [*rules, shape]}


def _tag_rules() -> list[JsonValue]:
    """CEL rules of spec.aws.tags: AWS's own limits, and the prefixes and key reserved by AWS and by us."""
    own = GROUP.replace(".", "\\\\.")
    return [
        _cel(
            f"self.all(k, size(k) >= 1 && size(k) <= {TAG_KEY_MAX})",
            f"tag keys must be 1 to {TAG_KEY_MAX} characters long",
        ),
        _cel(
            f"self.all(k, k.matches('{TAG_CHARACTERS}'))",
            f"tag keys may hold only {TAG_CHARACTERS_TEXT} (AWS's tag characters)",
        ),
        _cel(
            f"self.all(k, self[k].matches('{TAG_CHARACTERS}'))",
            f"tag values may hold only {TAG_CHARACTERS_TEXT} (AWS's tag characters)",
        ),
        _cel(
            "self.all(k, !k.matches('^(?i)aws:'))",
            "tag keys may not start with aws: in any case (AWS reserves it)",
        ),
        _cel(
            f"self.all(k, !k.matches('^(?i){own}/'))",
            f"tag keys may not start with {GROUP}/ in any case (the operator's ownership tags)",
        ),
        _cel(
            f"self.all(k, k != '{TAG_NAME}')",
            f"the {TAG_NAME} tag is the operator's (it names what it creates): use another key",
        ),
    ]


def _aws_tag_text(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "LZN" or ch in "_.:/=+-@" for ch in text)


def tag_problem(key: str, value: str) -> str | None:
    """Why AWS (or the operator) would refuse the tag ``key: value``; None when it is fine."""
    if not 1 <= len(key) <= TAG_KEY_MAX:
        return f"tag keys must be 1 to {TAG_KEY_MAX} characters long"
    if len(value) > TAG_VALUE_MAX:
        return f"tag values must be at most {TAG_VALUE_MAX} characters long"
    if not _aws_tag_text(key):
        return f"tag keys may hold only {TAG_CHARACTERS_TEXT} (AWS's tag characters)"
    if not _aws_tag_text(value):
        return f"tag values may hold only {TAG_CHARACTERS_TEXT} (AWS's tag characters)"
    if key.lower().startswith("aws:"):
        return "tag keys may not start with aws: in any case (AWS reserves it)"
    if key.lower().startswith(f"{GROUP}/"):
        return f"tag keys may not start with {GROUP}/ in any case (the operator's ownership tags)"
    if key == TAG_NAME:
        return f"the {TAG_NAME} tag is the operator's (it names what it creates): use another key"
    return None


def strip_api_version(url: str) -> str:
    """The API base URL without a trailing /v1 (or /v1/): the operator adds the version itself."""
    base = url.strip().rstrip("/")
    if base.lower().endswith(API_VERSION_SUFFIX):
        base = base[: -len(API_VERSION_SUFFIX)].rstrip("/")
    return base


Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
VpcId = Annotated[str, StringConstraints(pattern=VPC_ID_PATTERN)]
SubnetId = Annotated[
    str,
    StringConstraints(pattern=SUBNET_ID_PATTERN),
    Field(
        description="A subnet of the VPC (subnet-...).",
        json_schema_extra=_shaped(
            SUBNET_ID_PATTERN, "each of subnetIds must look like subnet-0123456789abcdef0", 24
        ),
    ),
]
SecurityGroupId = Annotated[
    str,
    StringConstraints(pattern=SECURITY_GROUP_ID_PATTERN),
    Field(
        description="A security group of the VPC (sg-...).",
        json_schema_extra=_shaped(
            SECURITY_GROUP_ID_PATTERN, "each of securityGroupIds must look like sg-0123456789abcdef0", 20
        ),
    ),
]
VpcEndpointId = Annotated[str, StringConstraints(pattern=VPC_ENDPOINT_ID_PATTERN)]
RoleArn = Annotated[str, StringConstraints(pattern=ROLE_ARN_PATTERN)]
HostedZoneId = Annotated[str, StringConstraints(pattern=HOSTED_ZONE_ID_PATTERN)]
SecretName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class DnsMode(StrEnum):
    ROUTE53 = "Route53"
    NONE = "None"


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class PublicAccessMode(StrEnum):
    UNCHANGED = "Unchanged"
    PRIVATE_ONLY = "PrivateOnly"
    ALLOW_LIST = "AllowList"


# An IPv4 address or CIDR as ClickHouse's IP access list takes it (its console and API are IPv4).
IPV4_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_SOURCE_PATTERN = rf"^{IPV4_OCTET}([.]{IPV4_OCTET}){{3}}(/(3[0-2]|[12]?[0-9]))?$"
IpSource = Annotated[
    str,
    StringConstraints(pattern=IPV4_SOURCE_PATTERN),
    Field(
        description="An IPv4 address or CIDR block (e.g. 203.0.113.0/24).",
        json_schema_extra=_shaped(
            IPV4_SOURCE_PATTERN,
            "each of publicAccess.sources must be an IPv4 address or CIDR like 203.0.113.0/24",
            18,
        ),
    ),
]


class PublicAccess(_Model):
    """Whether the operator restricts the service's public IP access list (ClickHouse's "PrivateLink only")."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.mode == 'AllowList' ? (has(self.sources) && size(self.sources) > 0) "
                    ": !has(self.sources) || size(self.sources) == 0",
                    "publicAccess.sources is required with mode AllowList and allowed only with it",
                ),
            ]
        }
    )

    mode: PublicAccessMode = Field(
        description="Unchanged (as without publicAccess): the operator never touches the service's IP access list. "
        "PrivateOnly: it removes every entry, so only PrivateLink reaches the service. AllowList: the list "
        "becomes exactly `sources`. Changes are made by delta and undone on deletion or on a switch back to "
        "Unchanged; entries a person adds or removes since are left as they are.",
    )
    sources: list[IpSource] = Field(
        default_factory=list,
        max_length=100,
        description="With mode AllowList: the IPv4 addresses or CIDR blocks allowed to reach the service "
        "publicly (besides PrivateLink).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _sources_with_allow_list(self) -> PublicAccess:
        if (self.mode is PublicAccessMode.ALLOW_LIST) != bool(self.sources):
            raise ValueError("publicAccess.sources is required with mode AllowList and allowed only with it")
        return self


class SecretKeyRef(_Model):
    """A Secret in the resource's namespace holding a ClickHouse Cloud API key."""

    name: SecretName = Field(description="Name of the Secret in the same namespace.")
    key_id_key: SecretKey = Field(
        DEFAULT_KEY_ID_KEY, alias="keyIdKey", description="Key in the Secret holding the API key ID."
    )
    key_secret_key: SecretKey = Field(
        DEFAULT_KEY_SECRET_KEY,
        alias="keySecretKey",
        description="Key in the Secret holding the API key secret.",
    )


class ClickHouseSpec(_Model):
    """Which ClickHouse Cloud service to connect, and how to reach its API."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.serviceId) != has(self.serviceName)",
                    "exactly one of serviceId or serviceName is required",
                ),
            ]
        }
    )

    organization_id: Uuid = Field(
        alias="organizationId",
        description="ClickHouse Cloud organization ID (uuid). Immutable.",
        json_schema_extra=_shaped(
            UUID_PATTERN,
            f"organizationId must be a UUID like {UUID_EXAMPLE}",
            36,
            _cel(IMMUTABLE, "organizationId is immutable"),
        ),
    )
    service_id: Uuid | None = Field(
        None,
        alias="serviceId",
        description="Service ID (uuid); or give serviceName.",
        json_schema_extra=_shaped(UUID_PATTERN, f"serviceId must be a UUID like {UUID_EXAMPLE}", 36),
    )
    service_name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, alias="serviceName", description="Service name, unique among the organization's AWS services."
    )
    credentials_secret_ref: SecretKeyRef = Field(
        alias="credentialsSecretRef", description="Secret with the API key (an admin key can write)."
    )
    api_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/.*)?$")] = Field(
        DEFAULT_API_URL,
        alias="apiUrl",
        description="ClickHouse Cloud API base URL; a trailing /v1 (as ClickHouse's docs write it) is dropped.",
    )
    public_access: PublicAccess | None = Field(
        None,
        alias="publicAccess",
        description="Restrict the service's public IP access list (absent: Unchanged). Resources of one "
        "service that disagree: the oldest one's setting is in force.",
    )

    @field_validator("api_url")
    @classmethod
    def _without_version(cls, url: str) -> str:
        return strip_api_version(url)


class AwsSpec(_Model):
    """Where the VPC endpoint lives."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.vpcEndpointId) || (has(self.subnetIds) && size(self.subnetIds) > 0)",
                    "subnetIds is required unless an existing vpcEndpointId is adopted",
                ),
            ]
        }
    )

    region: Region = Field(
        description="AWS region of the VPC (e.g. us-east-1). Immutable.",
        json_schema_extra=_shaped(
            REGION_PATTERN,
            "region must be an AWS region code like us-east-1",
            32,
            _cel(IMMUTABLE, "region is immutable"),
        ),
    )
    vpc_id: VpcId = Field(
        alias="vpcId",
        description="VPC in which the endpoint is created. Immutable.",
        json_schema_extra=_shaped(
            VPC_ID_PATTERN,
            "vpcId must look like vpc-0123456789abcdef0",
            21,
            _cel(IMMUTABLE, "vpcId is immutable"),
        ),
    )
    subnet_ids: list[SubnetId] = Field(
        default_factory=list,
        alias="subnetIds",
        max_length=16,
        description="Subnets for the endpoint's network interfaces (one per availability zone).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    security_group_ids: list[SecurityGroupId] = Field(
        default_factory=list,
        alias="securityGroupIds",
        max_length=5,
        description="Security groups for the endpoint; they must allow inbound 443, 8443, 9440 and 3306.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    vpc_endpoint_id: VpcEndpointId | None = Field(
        None,
        alias="vpcEndpointId",
        description="Adopt this existing endpoint: the operator never creates, modifies or deletes it.",
        json_schema_extra=_shaped(
            VPC_ENDPOINT_ID_PATTERN, "vpcEndpointId must look like vpce-0123456789abcdef0", 22
        ),
    )
    role_arn: RoleArn | None = Field(
        None,
        alias="roleArn",
        description="IAM role to assume (cross-account), e.g. arn:aws:iam::123456789012:role/chpl.",
        json_schema_extra=_shaped(
            ROLE_ARN_PATTERN, "roleArn must look like arn:aws:iam::123456789012:role/NAME", 2048
        ),
    )
    tags: dict[str, Annotated[str, StringConstraints(max_length=TAG_VALUE_MAX)]] = Field(
        default_factory=dict,
        max_length=TAGS_MAX,
        description="Extra tags for the AWS resources the operator creates (key: value), as AWS allows them: keys "
        f"of 1 to {TAG_KEY_MAX} and values of up to {TAG_VALUE_MAX} {TAG_CHARACTERS_TEXT}; keys starting with aws: "
        f"or {GROUP}/ (in any case) and the key {TAG_NAME} are reserved. A shared endpoint carries its oldest "
        "user's tags.",
        json_schema_extra={"x-kubernetes-validations": _tag_rules()},
    )

    @field_validator("tags")
    @classmethod
    def _aws_accepts_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            problem = tag_problem(key, value)
            if problem:
                raise ValueError(problem)
        return tags


class DnsSpec(_Model):
    """How clients resolve the private hostname."""

    mode: DnsMode = Field(
        DnsMode.ROUTE53, description="Route53 (default) writes the record; None leaves DNS to you."
    )
    hosted_zone_id: HostedZoneId | None = Field(
        None,
        alias="hostedZoneId",
        description="Private hosted zone to write into; by default the operator finds or creates "
        "<region>.vpce.aws.clickhouse.cloud associated with the VPC.",
        json_schema_extra=_shaped(
            HOSTED_ZONE_ID_PATTERN,
            "hostedZoneId must be a Route 53 hosted zone ID like Z0123456789ABCDEFGHIJ",
            32,
        ),
    )


class ClickHousePrivateLinkSpec(_Model):
    """Desired state: connect this VPC to this ClickHouse Cloud service over PrivateLink."""

    clickhouse: ClickHouseSpec = Field(
        description="The ClickHouse Cloud service to connect, and the API key that manages it."
    )
    aws: AwsSpec = Field(description="The VPC, subnets and security groups of the VPC endpoint.")
    dns: DnsSpec = Field(
        default_factory=lambda: DnsSpec.model_validate({}),
        description="How the service's private hostname resolves in the VPC.",
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.DELETE,
        alias="deletionPolicy",
        description="Delete (default) removes what the operator created; Retain leaves AWS resources in place.",
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Model):
    """One aspect of the resource's state, as in every Kubernetes API (Ready sums them up)."""

    type: str = Field(
        description="What the condition is about: Ready, one step behind it (ServiceResolved, "
        "VpcEndpointReady, AllowListed, DnsReady), or the advisory SecurityGroupReady (never holds Ready back)."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    ] = Field(description="Why, in one CamelCase word (docs/troubleshooting.md explains each).")
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        "", description="Why, in words a person can act on."
    )
    last_transition_time: dt.datetime = Field(
        alias="lastTransitionTime", description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", ge=0, description="The metadata.generation this condition is about."
    )


class IpAccessEntry(_Model):
    """One entry of a ClickHouse service's IP access list."""

    source: str = Field(description="IP address or CIDR.")
    description: str = Field("", description="The entry's description in ClickHouse.")


class PublicAccessIntent(_Model):
    """A change to the IP access list about to be sent (written before the PATCH, cleared after it)."""

    applied: str = Field(
        description="The setting the change carries out (PrivateOnly, or AllowList:<sources>)."
    )
    remove: list[IpAccessEntry] = Field(default_factory=list, description="Entries to remove.")
    add: list[IpAccessEntry] = Field(default_factory=list, description="Entries to add.")


class PublicAccessRecord(_Model):
    """What the operator changed on the service's IP access list, to be undone exactly when it lets go."""

    service_id: str = Field(alias="serviceId", description="The service whose list this is.")
    applied: str | None = Field(
        None, description="The setting the list was last brought to (PrivateOnly, or AllowList:<sources>)."
    )
    removed: list[IpAccessEntry] = Field(
        default_factory=list, description="Entries the operator removed: put back when it lets go."
    )
    added: list[IpAccessEntry] = Field(
        default_factory=list, description="Entries the operator added: removed when it lets go."
    )
    intent: PublicAccessIntent | None = Field(
        None, description="A change written before its PATCH: a restarted operator completes it."
    )


class ConnectionEndpoint(_Model):
    """One way for clients in the VPC to reach the service over PrivateLink."""

    protocol: str = Field(description="https, nativesecure (native protocol over TLS) or mysql.")
    host: str = Field(description="Private hostname to connect to.")
    port: int = Field(description="TCP port of the protocol.")


class ClickHousePrivateLinkStatus(_Model):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(
        None,
        alias="observedGeneration",
        description="The metadata.generation the operator last acted on; older than the resource's "
        "generation while a change is still being applied.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Where the connection stands: Ready and the step conditions behind it.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    private_dns_hostname: str | None = Field(
        None,
        alias="privateDnsHostname",
        description="The service's private hostname: connect to it from inside the VPC.",
    )
    endpoint_service_id: str | None = Field(
        None,
        alias="endpointServiceId",
        description="The ClickHouse Cloud VPC endpoint service (com.amazonaws.vpce...) the endpoint connects to.",
    )
    service_id: str | None = Field(
        None, alias="serviceId", description="ID of the ClickHouse Cloud service (resolved from serviceName)."
    )
    service_region: str | None = Field(
        None, alias="serviceRegion", description="AWS region the ClickHouse Cloud service runs in."
    )
    vpc_endpoint_id: str | None = Field(
        None, alias="vpcEndpointId", description="ID of the VPC endpoint in use (created or adopted)."
    )
    vpc_endpoint_state: str | None = Field(
        None,
        alias="vpcEndpointState",
        description="The endpoint's state as AWS reports it (pendingAcceptance, pending, available, ...).",
    )
    vpc_endpoint_owned: bool | None = Field(
        None,
        alias="vpcEndpointOwned",
        description="True when the operator created the endpoint and will delete it.",
    )
    allow_list_entry_added: bool | None = Field(
        None,
        alias="allowListEntryAdded",
        description="True when the operator added the endpoint to the service's allow list (it then removes it "
        "with its last user); False when the entry was there before, added by someone else (never removed).",
    )
    hosted_zone_id: str | None = Field(
        None,
        alias="hostedZoneId",
        description="Route 53 private hosted zone holding the hostname's record (absent with dns.mode None).",
    )
    endpoints: list[ConnectionEndpoint] = Field(
        default_factory=list, description="Host and port of each protocol clients can use."
    )
    public_access: PublicAccessRecord | None = Field(
        None,
        alias="publicAccess",
        description="The operator's changes to the service's IP access list (spec.clickhouse.publicAccess), "
        "held by the resource that restores them.",
    )
    last_handled_configuration: str | None = Field(
        None,
        alias="lastHandledConfiguration",
        description="The resource as the operator last handled it (JSON: spec, labels and annotations), to "
        "tell what a change changed. Written by the operator's framework (kopf) at the end of a pass; "
        "resources last handled by an older version keep it in an annotation instead.",
    )
    handler_progress: dict[str, dict[str, Any]] | None = Field(
        None,
        alias="handlerProgress",
        description="The operator's framework (kopf) keeps here, by handler, a pass that has not finished yet: "
        "when it started, its retries, when it is retried next and why it failed last (started, retries, "
        "delayed, message, ...; inputs: what it acted on). Removed when the pass ends; older versions kept "
        "these in annotations.",
        json_schema_extra={
            "additionalProperties": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    )
    handler_progress_touch: str | None = Field(
        None,
        alias="handlerProgressTouch",
        description="Set by the operator's framework (kopf) when a retry is due, to wake the resource's next pass; "
        "removed by that pass.",
    )


class ClickHousePrivateLink(_Model):
    """A PrivateLink connection from a VPC to a ClickHouse Cloud service."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: dict[str, Any]
    spec: ClickHousePrivateLinkSpec
    status: ClickHousePrivateLinkStatus = Field(
        default_factory=lambda: ClickHousePrivateLinkStatus.model_validate({})
    )


# ------------------------------------------------------------------------------------------ tenancy policy

# A glob over names and IDs: `*` any run of characters, `?` one character (fnmatch's, case-sensitive).
Glob = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[^\s]+$")]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(_Model):
    """One requirement on a namespace's labels, as in every Kubernetes label selector."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=317)] = Field(description="Label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=list, description="Values for In and NotIn."
    )


class LabelSelector(_Model):
    """Namespaces by their labels (all of matchLabels and matchExpressions must hold)."""

    match_labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, alias="matchLabels", description="Labels a namespace must carry (key: value)."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions", description="Requirements on a namespace's labels."
    )


class PolicyNamespaces(_Model):
    """The namespaces a policy applies to: those named, and those the selector selects."""

    names: list[Glob] = Field(
        default_factory=list,
        max_length=256,
        description="Namespace names, or globs such as team-* ('*': every namespace).",
    )
    selector: LabelSelector | None = Field(
        None,
        description="Namespaces whose labels match. An empty selector selects none: every namespace is "
        "names: ['*'].",
    )


class PolicyAllow(_Model):
    """What resources in the policy's namespaces may name. An entry may be a glob; '*' allows any value.

    A resource that leaves an optional field unset (roleArn, hostedZoneId) needs no entry for it.
    """

    vpc_ids: list[Glob] = Field(
        default_factory=list, alias="vpcIds", max_length=256, description="spec.aws.vpcId values allowed."
    )
    role_arns: list[Glob] = Field(
        default_factory=list,
        alias="roleArns",
        max_length=256,
        description="spec.aws.roleArn values allowed (e.g. arn:aws:iam::123456789012:role/*); unset roleArn "
        "(the operator's own identity) needs none.",
    )
    hosted_zone_ids: list[Glob] = Field(
        default_factory=list,
        alias="hostedZoneIds",
        max_length=256,
        description="spec.dns.hostedZoneId values allowed; unset (the VPC's zone, found or created by the "
        "operator) needs none.",
    )
    organization_ids: list[Glob] = Field(
        default_factory=list,
        alias="organizationIds",
        max_length=256,
        description="spec.clickhouse.organizationId values allowed.",
    )
    api_urls: list[Glob] = Field(
        default_factory=lambda: ["*"],
        alias="apiUrls",
        max_length=64,
        description="spec.clickhouse.apiUrl values allowed, compared without a trailing / or /v1; '*' "
        "(default) = any the operator allows (CHPL_CLICKHOUSE_API_URLS), which bounds every policy.",
    )


class PolicySecrets(_Model):
    """Which API-key Secrets the operator reads for the policy's namespaces."""

    require_opt_in: bool = Field(
        True,
        alias="requireOptIn",
        description=f'Read only Secrets labelled {GROUP}/api-key: "true" (default). false: any Secret the '
        "operator's RBAC lets it read.",
    )
    keys: list[SecretKey] = Field(
        default_factory=list,
        max_length=16,
        description=f"Secret keys a resource may name in keyIdKey or keySecretKey besides {DEFAULT_KEY_ID_KEY} "
        f"and {DEFAULT_KEY_SECRET_KEY}.",
    )


class ClickHousePrivateLinkPolicySpec(_Model):
    """Which namespaces may make the operator use which VPCs, AWS roles, zones, organizations and API URLs."""

    namespaces: PolicyNamespaces = Field(description="The namespaces this policy applies to.")
    allow: PolicyAllow = Field(
        default_factory=lambda: PolicyAllow.model_validate({}),
        description="What their ClickHousePrivateLinks may name.",
    )
    secrets: PolicySecrets = Field(
        default_factory=lambda: PolicySecrets.model_validate({}),
        description="Which Secrets, and which of their keys, the operator reads for them.",
    )
