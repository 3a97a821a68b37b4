"""The AWS stand-in fails as AWS does, on demand: each fault seen through boto3 (no retries) over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from clickhouse_privatelink_testkit.standins.aws import seed_network
from clickhouse_privatelink_testkit.standins.aws_faults import Fault, Throttle, route53_operation
from tests.fixtures.aws import AwsStandInProcess

Factory = Callable[[Sequence[str]], AwsStandInProcess]


@pytest.fixture(scope="module")
def standin(aws_standin_factory: Factory) -> AwsStandInProcess:
    return aws_standin_factory([])


@pytest.fixture(autouse=True)
def no_faults(standin: AwsStandInProcess) -> Iterator[None]:
    standin.control.clear()
    standin.control.set_throttle()
    yield
    standin.control.clear()
    standin.control.set_throttle()
    standin.control.set_endpoint_pending(0)


@pytest.fixture
def ec2(standin: AwsStandInProcess) -> Any:
    return standin.client("ec2")


@pytest.fixture
def r53(standin: AwsStandInProcess) -> Any:
    return standin.client("route53")


def client_error(call: Callable[[], Any]) -> tuple[str, int, str]:
    """(code, HTTP status, message) of the ClientError the call raises."""
    with pytest.raises(ClientError) as info:
        call()
    response: Any = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_ec2_request_limit_exceeded_by_count(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.add_fault("throttle", service="ec2", operation="DescribeVpcs", count=2)
    for _ in range(2):
        assert client_error(ec2.describe_vpcs) == ("RequestLimitExceeded", 503, "Request limit exceeded.")
    ec2.describe_vpcs()  # spent
    state = standin.control.state()
    assert state["faults"] == []
    assert state["injected"] == {"RequestLimitExceeded": 2}


def test_ec2_fault_filtered_by_operation(standin: AwsStandInProcess, ec2: Any, r53: Any) -> None:
    standin.control.add_fault("throttle", service="ec2", operation="DescribeSubnets", count=1)
    ec2.describe_vpcs()
    r53.list_hosted_zones()
    assert client_error(ec2.describe_subnets)[0] == "RequestLimitExceeded"


def test_route53_throttling(standin: AwsStandInProcess, ec2: Any, r53: Any) -> None:
    standin.control.add_fault("throttle", service="route53", count=1)
    ec2.describe_vpcs()  # another service: untouched
    assert client_error(r53.list_hosted_zones) == ("Throttling", 400, "Rate exceeded")
    r53.list_hosted_zones()


def test_route53_prior_request_not_complete_on_change_batches_only(
    standin: AwsStandInProcess, r53: Any
) -> None:
    zone_id = r53.create_hosted_zone(Name="prior.example.com", CallerReference=str(time.time_ns()))[
        "HostedZone"
    ]["Id"]
    standin.control.add_fault("prior_request_not_complete", operation="ChangeResourceRecordSets", count=1)
    r53.list_resource_record_sets(HostedZoneId=zone_id)
    r53.get_hosted_zone(Id=zone_id)

    def change() -> Any:
        return r53.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": "a.prior.example.com",
                            "Type": "A",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": "10.0.0.1"}],
                        },
                    }
                ]
            },
        )

    code, status, _ = client_error(change)
    assert (code, status) == ("PriorRequestNotComplete", 400)
    change()
    assert standin.control.state()["injected"] == {"PriorRequestNotComplete": 1}


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "ServiceUnavailable")])
@pytest.mark.parametrize("service", ["ec2", "route53"])
def test_server_errors(
    standin: AwsStandInProcess, ec2: Any, r53: Any, service: str, status: int, code: str
) -> None:
    standin.control.add_fault("error", service=service, status=status)
    call = ec2.describe_vpcs if service == "ec2" else r53.list_hosted_zones
    got_code, got_status, _ = client_error(call)
    assert (got_code, got_status) == (code, status)
    call()


def test_error_code_and_message_override(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.add_fault("error", status=500, code="InternalFailure", message="boom")
    assert client_error(ec2.describe_vpcs) == ("InternalFailure", 500, "boom")


def test_dropped_connection(standin: AwsStandInProcess, ec2: Any, r53: Any) -> None:
    standin.control.add_fault("drop", service="route53", count=1)
    ec2.describe_vpcs()
    with pytest.raises(ConnectionClosedError):
        r53.list_hosted_zones()
    r53.list_hosted_zones()  # the server goes on serving
    assert standin.control.state()["injected"] == {"drop": 1}


def test_latency_delays_then_answers(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.add_fault("latency", seconds=0.5, count=1)
    start = time.monotonic()
    ec2.describe_vpcs()
    assert time.monotonic() - start >= 0.5


def test_latency_past_the_read_timeout(standin: AwsStandInProcess) -> None:
    ec2 = standin.client("ec2", read_timeout=0.3)
    standin.control.add_fault("latency", seconds=1.0, count=1)
    with pytest.raises(ReadTimeoutError):
        ec2.describe_vpcs()


def test_latency_then_a_terminal_fault(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.set_faults([{"kind": "latency", "seconds": 0.3}, {"kind": "throttle"}])
    start = time.monotonic()
    assert client_error(ec2.describe_vpcs)[0] == "RequestLimitExceeded"
    assert time.monotonic() - start >= 0.3
    assert standin.control.state()["injected"] == {"latency": 1, "RequestLimitExceeded": 1}


def outcomes(ec2: Any, n: int) -> list[bool]:
    """For n calls: True when the call failed with the injected throttle."""
    out = []
    for _ in range(n):
        try:
            ec2.describe_vpcs()
            out.append(False)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "RequestLimitExceeded"
            out.append(True)
    return out


def test_rate_is_probabilistic_and_reproducible_with_a_seed(standin: AwsStandInProcess, ec2: Any) -> None:
    fault = {"kind": "throttle", "service": "ec2", "rate": 0.5}
    standin.control.set_faults([fault], seed=7)
    first = outcomes(ec2, 40)
    assert 5 < sum(first) < 35
    assert standin.control.state()["faults"][0]["fired"] == sum(first)  # not spent: no count
    standin.control.set_faults([fault], seed=7)
    assert outcomes(ec2, 40) == first


def test_rate_with_count_stops_when_spent(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.set_faults([{"kind": "throttle", "rate": 1.0, "count": 3}])
    assert outcomes(ec2, 5) == [True, True, True, False, False]
    assert standin.control.state()["faults"] == []


def test_rate_zero_never_fires(standin: AwsStandInProcess, ec2: Any) -> None:
    standin.control.set_faults([{"kind": "throttle", "rate": 0.0}])
    assert outcomes(ec2, 5) == [False] * 5


def test_faults_at_start(aws_standin_factory: Factory) -> None:
    other = aws_standin_factory(
        [
            "--fault",
            "kind=throttle,service=ec2,operation=DescribeVpcs,count=2",
            "--fault",
            '{"kind": "error", "service": "route53", "status": 503}',
            "--fault-seed",
            "1",
        ]
    )
    ec2, r53 = other.client("ec2"), other.client("route53")
    assert client_error(r53.list_hosted_zones)[:2] == ("ServiceUnavailable", 503)
    assert [client_error(ec2.describe_vpcs)[0] for _ in range(2)] == ["RequestLimitExceeded"] * 2
    ec2.describe_vpcs()
    assert other.control.state()["injected"] == {"RequestLimitExceeded": 2, "ServiceUnavailable": 1}


def test_route53_token_bucket(standin: AwsStandInProcess, r53: Any, ec2: Any) -> None:
    standin.control.set_throttle(route53=(5, 5))
    results = []
    for _ in range(10):
        try:
            r53.list_hosted_zones()
            results.append("ok")
        except ClientError as e:
            results.append(e.response["Error"]["Code"])
    assert results[:5] == ["ok"] * 5
    assert "Throttling" in results[5:]
    for _ in range(10):
        ec2.describe_vpcs()  # EC2 is not throttled
    time.sleep(0.5)
    r53.list_hosted_zones()  # refilled at 5 per second
    state = standin.control.state()
    assert state["throttle"] == {"ec2": None, "route53": {"rate": 5.0, "burst": 5.0}}
    assert state["throttled"]["route53"] == results.count("Throttling")


def test_ec2_token_bucket_at_start(aws_standin_factory: Factory) -> None:
    other = aws_standin_factory(["--throttle", "ec2=1/2"])
    ec2 = other.client("ec2")
    ec2.describe_vpcs()
    ec2.describe_vpcs()
    assert client_error(ec2.describe_vpcs) == ("RequestLimitExceeded", 503, "Request limit exceeded.")


def test_token_bucket_is_per_access_key(standin: AwsStandInProcess) -> None:
    import boto3

    standin.control.set_throttle(route53=(0.01, 1))
    first = standin.client("route53")
    first.list_hosted_zones()
    assert client_error(first.list_hosted_zones)[0] == "Throttling"
    second = boto3.client(
        "route53",
        region_name="us-east-1",
        endpoint_url=standin.url,
        aws_access_key_id="another",
        aws_secret_access_key="another",
    )
    second.list_hosted_zones()


def test_control_api(standin: AwsStandInProcess) -> None:
    base = standin.url + "/_standin"
    assert httpx.post(f"{base}/faults", json={"kind": "explode"}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"kind": "throttle", "rate": 2}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"kind": "throttle", "service": "s3"}).status_code == 400
    assert httpx.put(f"{base}/throttle", json={"sqs": {"rate": 1}}).status_code == 400
    body = httpx.post(f"{base}/faults", json={"faults": [{"kind": "drop"}, {"kind": "latency"}]}).json()
    assert [f["kind"] for f in body["faults"]] == ["drop", "latency"]
    assert body["faults"][0]["count"] == 1
    assert httpx.delete(f"{base}/faults").json()["faults"] == []
    assert httpx.get(f"{base}/nothing").status_code == 404


def test_fault_option_parsing() -> None:
    fault = Fault.parse("throttle,service=route53,operation=CreateHostedZone,rate=0.25")
    assert (fault.kind, fault.service, fault.operation, fault.rate, fault.count) == (
        "throttle",
        "route53",
        "CreateHostedZone",
        0.25,
        None,
    )
    assert Fault.parse('{"kind": "drop", "count": 2}').count == 2
    assert Throttle.parse("route53=5") == ("route53", Throttle(rate=5.0, burst=5.0))
    assert Throttle.parse("ec2=20/40") == ("ec2", Throttle(rate=20.0, burst=40.0))
    with pytest.raises(ValueError):
        Fault.parse("kind=throttle,count=0")


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", "/2013-04-01/hostedzone", "CreateHostedZone"),
        ("GET", "/2013-04-01/hostedzone", "ListHostedZones"),
        ("GET", "/2013-04-01/hostedzone/Z123", "GetHostedZone"),
        ("DELETE", "/2013-04-01/hostedzone/Z123", "DeleteHostedZone"),
        ("POST", "/2013-04-01/hostedzone/Z123/rrset/", "ChangeResourceRecordSets"),
        ("POST", "/2013-04-01/hostedzone/Z123/rrset", "ChangeResourceRecordSets"),
        ("GET", "/2013-04-01/hostedzone/Z123/rrset", "ListResourceRecordSets"),
        ("GET", "/2013-04-01/change/C123", "GetChange"),
        ("GET", "/2013-04-01/hostedzonesbyvpc", "ListHostedZonesByVPC"),
        ("POST", "/2013-04-01/hostedzone/Z123/associatevpc", "AssociateVPCWithHostedZone"),
        ("POST", "/2013-04-01/tags/hostedzone/Z123", "ChangeTagsForResource"),
        ("GET", "/2013-04-01/tags/hostedzone/Z123", "ListTagsForResource"),
    ],
)
def test_route53_operation_from_method_and_path(method: str, path: str, operation: str) -> None:
    assert route53_operation(method, path) == operation


def test_route53_fault_by_operation_over_http(standin: AwsStandInProcess, r53: Any) -> None:
    standin.control.add_fault("throttle", service="route53", operation="ListHostedZonesByVPC", count=1)
    r53.list_hosted_zones()
    code, status, _ = client_error(
        lambda: r53.list_hosted_zones_by_vpc(VPCId="vpc-12345678", VPCRegion="us-east-1")
    )
    assert (code, status) == ("Throttling", 400)


def test_endpoints_stay_deleting_for_as_long_as_the_control_says(
    standin: AwsStandInProcess, ec2: Any
) -> None:
    network = seed_network(standin.url, "us-east-1")
    created = ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=network.vpc_id,
        ServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
        SubnetIds=network.subnet_ids,
    )
    endpoint_id = created["VpcEndpoint"]["VpcEndpointId"]

    def state() -> str:
        (endpoint,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
        return str(endpoint["State"])

    assert state() == "available"  # started with no pending time
    assert standin.control.set_endpoint_pending(600) == {"pending_seconds": 600}
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])
    assert state() == "deleting"
    standin.control.set_endpoint_pending(0)  # applies to the endpoint already on its way
    assert state() == "deleted"
    with pytest.raises(RuntimeError, match="400"):
        standin.control.set_endpoint_pending(-1)
