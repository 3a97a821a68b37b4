"""One definition of each fixed fact: API group, names, ports, tag keys."""

from typing import Final

GROUP: Final = "privatelink.clickhouse.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ClickHousePrivateLink"
PLURAL: Final = "clickhouseprivatelinks"
SINGULAR: Final = "clickhouseprivatelink"
SHORT_NAMES: Final = ("chpl",)
CATEGORIES: Final = ("clickhouse",)

# The tenancy policy a platform team sets (cluster-scoped): which namespaces may use which cloud objects.
POLICY_KIND: Final = "ClickHousePrivateLinkPolicy"
POLICY_PLURAL: Final = "clickhouseprivatelinkpolicies"
POLICY_SINGULAR: Final = "clickhouseprivatelinkpolicy"
POLICY_SHORT_NAMES: Final = ("chplpolicy",)

FINALIZER: Final = f"{GROUP}/finalizer"
# Set on a resource when the API-key Secret it uses changes (CHPL_WATCH_SECRETS): triggers a reconcile.
ANNOTATION_SECRET_VERSION: Final = f"{GROUP}/secret-version"
# Set on the resources a policy refused when a policy changes: they are looked at again at once.
ANNOTATION_POLICY_VERSION: Final = f"{GROUP}/policy-version"
# A new resource's first intent (decisions/intent.py), written with the operator's finalizer in one PATCH: read
# only until its first pass has written the status.
ANNOTATION_INTENT: Final = f"{GROUP}/intent"
# The opt-in a Secret carries for the operator to read it as a ClickHouse API key (value "true").
LABEL_API_KEY: Final = f"{GROUP}/api-key"
OPERATOR_NAME: Final = "clickhouse-privatelink-operator"

# Ownership tags on every AWS resource the operator creates (the AWS Load Balancer Controller's pattern).
TAG_MANAGED_BY: Final = f"{GROUP}/managed-by"
TAG_CLUSTER: Final = f"{GROUP}/cluster"
TAG_RESOURCE: Final = f"{GROUP}/resource"  # "<namespace>/<name>"
TAG_RESOURCE_UID: Final = f"{GROUP}/resource-uid"  # only on endpoints made before endpoints were shared
TAG_ENDPOINT_KEY: Final = f"{GROUP}/endpoint-key"  # a shared endpoint's identity (usage.EndpointKey.digest)
TAG_ENDPOINT_SERVICE: Final = f"{GROUP}/endpoint-service"
TAG_VPC: Final = f"{GROUP}/vpc"
# Set on a shared endpoint when a user with deletionPolicy Retain goes: the endpoint is then never deleted
# by the operator (value: that resource's namespace/name).
TAG_RETAINED: Final = f"{GROUP}/retained-by"
TAG_NAME: Final = "Name"  # the operator's: spec.aws.tags may not set it

DEFAULT_API_URL: Final = "https://api.clickhouse.cloud"
# ClickHouse's docs write the base URL with the API version; the operator adds it itself.
API_VERSION_SUFFIX: Final = "/v1"
DEFAULT_KEY_ID_KEY: Final = "keyId"
DEFAULT_KEY_SECRET_KEY: Final = "keySecret"

# ClickHouse endpoints reachable over the private hostname (the guide's security-group ports).
PORT_HTTPS: Final = 8443
PORT_NATIVE_TLS: Final = 9440
PORT_MYSQL: Final = 3306
CONNECTION_PORTS: Final = {"https": PORT_HTTPS, "nativesecure": PORT_NATIVE_TLS, "mysql": PORT_MYSQL}

PRIVATE_ZONE_SUFFIX: Final = "vpce.aws.clickhouse.cloud"

# Consumer regions from which ClickHouse Cloud supports cross-region PrivateLink (the guide's list).
CROSS_REGION_SUPPORTED: Final = frozenset(
    {
        "sa-east-1", "il-central-1", "me-central-1", "me-south-1", "eu-central-2", "eu-north-1",
        "eu-south-2", "eu-west-3", "eu-south-1", "eu-west-2", "eu-west-1", "eu-central-1",
        "ca-west-1", "ca-central-1", "ap-northeast-1", "ap-southeast-2", "ap-southeast-1",
        "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-4", "ap-southeast-3",
        "ap-south-2", "ap-east-1", "af-south-1", "us-west-2", "us-west-1", "us-east-2", "us-east-1",
    }
)  # fmt: skip
