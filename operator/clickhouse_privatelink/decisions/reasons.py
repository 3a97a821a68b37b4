"""The vocabulary of condition types and reasons written on a ClickHousePrivateLink.

Each reason is machine-readable and has one meaning; the README's troubleshooting table and the ArgoCD
health check are written from this module, and tests keep them in step.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ConditionType(StrEnum):
    SERVICE_RESOLVED = "ServiceResolved"
    VPC_ENDPOINT_READY = "VpcEndpointReady"
    DNS_READY = "DnsReady"
    ALLOW_LISTED = "AllowListed"
    READY = "Ready"
    # Advisory: written beside the steps, never part of Ready (see status.ADVISORY_CONDITIONS).
    SECURITY_GROUP_READY = "SecurityGroupReady"
    # Advisory unless CHPL_REACHABILITY_REQUIRED: the private hostname measured from the operator's pod.
    REACHABLE = "Reachable"
    # Advisory, only for resources with spec.clickhouse.publicAccess: the service's public IP access list.
    PUBLIC_ACCESS_RESTRICTED = "PublicAccessRestricted"


class Reason(StrEnum):
    # Success.
    RESOLVED = "Resolved"
    AVAILABLE = "Available"
    RECORD_WRITTEN = "RecordWritten"
    DNS_DISABLED = "DnsDisabled"
    ALLOW_LISTED = "AllowListed"
    READY = "Ready"
    # The shared endpoint is available, with the subnets and security groups of its oldest user, not ours.
    ENDPOINT_SETTINGS_OF_OTHER_RESOURCE = "EndpointSettingsOfOtherResource"
    # In progress: the operator is waiting for something that is expected to happen by itself.
    RECONCILING = "Reconciling"
    SERVICE_PROVISIONING = "ServiceProvisioning"
    ENDPOINT_PENDING = "EndpointPending"
    ENDPOINT_PENDING_ACCEPTANCE = "EndpointPendingAcceptance"
    WAITING_FOR_ENDPOINT = "WaitingForEndpoint"
    THROTTLED = "Throttled"
    UPSTREAM_UNAVAILABLE = "UpstreamUnavailable"
    DELETING = "Deleting"
    # Errors a person must fix; retried slowly, never in a hot loop.
    INVALID_SPEC = "InvalidSpec"
    API_URL_NOT_ALLOWED = "ApiUrlNotAllowed"
    # The tenancy policy does not let the resource's namespace use what it names (ClickHousePrivateLinkPolicy).
    NOT_PERMITTED = "NotPermitted"
    CREDENTIALS_SECRET_NOT_FOUND = "CredentialsSecretNotFound"
    CREDENTIALS_INVALID = "CredentialsInvalid"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    PRIVATE_LINK_NOT_AVAILABLE = "PrivateLinkNotAvailable"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    SERVICE_AMBIGUOUS = "ServiceAmbiguous"
    SERVICE_NOT_AWS = "ServiceNotAws"
    SERVICE_UNUSABLE = "ServiceUnusable"
    CLICKHOUSE_REQUEST_REJECTED = "ClickHouseRequestRejected"
    CROSS_REGION_NOT_SUPPORTED = "CrossRegionNotSupported"
    INVALID_AWS_CONFIGURATION = "InvalidAwsConfiguration"
    AWS_ACCESS_DENIED = "AwsAccessDenied"
    ENDPOINT_NOT_FOUND = "EndpointNotFound"
    ENDPOINT_MISMATCH = "EndpointMismatch"
    ENDPOINT_REJECTED = "EndpointRejected"
    ENDPOINT_FAILED = "EndpointFailed"
    HOSTED_ZONE_NOT_FOUND = "HostedZoneNotFound"
    DNS_RECORD_CONFLICT = "DnsRecordConflict"
    # Advisory (condition SecurityGroupReady; Ready stays True): in neither set below.
    SECURITY_GROUP_PORTS_OPEN = "SecurityGroupPortsOpen"
    SECURITY_GROUP_PORTS_CLOSED = "SecurityGroupPortsClosed"
    SECURITY_GROUPS_UNREADABLE = "SecurityGroupsUnreadable"
    # Advisory (condition Reachable), the troubleshooting section of ClickHouse's guide: in neither set below.
    REACHABLE = "Reachable"
    DNS_NOT_RESOLVING = "DnsNotResolving"
    DNS_POINTS_ELSEWHERE = "DnsPointsElsewhere"
    CONNECT_TIMEOUT = "ConnectTimeout"
    CONNECTION_REFUSED = "ConnectionRefused"
    CONNECTION_RESET = "ConnectionReset"
    TLS_FAILED = "TlsFailed"
    PING_FAILED = "PingFailed"
    # Reachable is Unknown: not measured from where the operator runs.
    OPERATOR_OUTSIDE_VPC = "OperatorOutsideVpc"
    OPERATOR_VPC_UNKNOWN = "OperatorVpcUnknown"
    REACHABILITY_CHECK_OFF = "ReachabilityCheckOff"
    # Advisory (condition PublicAccessRestricted, spec.clickhouse.publicAccess): in neither set below.
    PUBLIC_ACCESS_PRIVATE_ONLY = "PublicAccessPrivateOnly"
    PUBLIC_ACCESS_ALLOW_LIST = "PublicAccessAllowList"
    PUBLIC_ACCESS_CHANGED_BY_OTHERS = "PublicAccessChangedByOthers"
    PUBLIC_ACCESS_SETTING_OF_OTHER_RESOURCE = "PublicAccessSettingOfOtherResource"
    PUBLIC_ACCESS_UNCHANGED = "PublicAccessUnchanged"


# Reasons that mean "a person has to act": ArgoCD shows Degraded, the operator retries only slowly.
TERMINAL_REASONS: Final = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.API_URL_NOT_ALLOWED,
        Reason.NOT_PERMITTED,
        Reason.CREDENTIALS_SECRET_NOT_FOUND,
        Reason.CREDENTIALS_INVALID,
        Reason.UNAUTHORIZED,
        Reason.FORBIDDEN,
        Reason.PRIVATE_LINK_NOT_AVAILABLE,
        Reason.SERVICE_NOT_FOUND,
        Reason.SERVICE_AMBIGUOUS,
        Reason.SERVICE_NOT_AWS,
        Reason.SERVICE_UNUSABLE,
        Reason.CLICKHOUSE_REQUEST_REJECTED,
        Reason.CROSS_REGION_NOT_SUPPORTED,
        Reason.INVALID_AWS_CONFIGURATION,
        Reason.AWS_ACCESS_DENIED,
        Reason.ENDPOINT_NOT_FOUND,
        Reason.ENDPOINT_MISMATCH,
        Reason.ENDPOINT_REJECTED,
        Reason.ENDPOINT_FAILED,
        Reason.HOSTED_ZONE_NOT_FOUND,
        Reason.DNS_RECORD_CONFLICT,
    }
)

# Reasons that mean "wait, it will get there by itself": ArgoCD shows Progressing.
PROGRESSING_REASONS: Final = frozenset(
    {
        Reason.RECONCILING,
        Reason.SERVICE_PROVISIONING,
        Reason.ENDPOINT_PENDING,
        Reason.ENDPOINT_PENDING_ACCEPTANCE,
        Reason.WAITING_FOR_ENDPOINT,
        Reason.THROTTLED,
        Reason.UPSTREAM_UNAVAILABLE,
        Reason.DELETING,
    }
)
