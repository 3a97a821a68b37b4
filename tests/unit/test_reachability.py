"""Reachable: the classification of a measurement (pure), and the probe against real local listeners."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from clickhouse_privatelink.adapters.network.probe import PlacementFinder, ProbeConfig, Prober
from clickhouse_privatelink.decisions.reachability import (
    Context,
    DnsAnswer,
    DnsOutcome,
    Placement,
    PortOutcome,
    PortProbe,
    ProbeReport,
    changed_to_problem,
    classify,
    needs_allow_list,
    ready_result,
    skip_result,
)
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink_testkit.standins.data_plane import Authority

HOST = "abc123.us-east-1.vpce.aws.clickhouse.cloud"
IFACES = ("10.0.1.5", "10.0.2.7")
CTX = Context(
    endpoint_id="vpce-1", interface_addresses=IFACES, service_name="analytics", security_groups=("sg-1",)
)


def _ok_ports(*outcomes: tuple[int, PortOutcome, str]) -> tuple[PortProbe, ...]:
    failed = {(port): (outcome, detail) for port, outcome, detail in outcomes}
    return tuple(PortProbe(a, p, *failed.get(p, (PortOutcome.OK, ""))) for p in (8443, 9440) for a in IFACES)


def _report(*outcomes: tuple[int, PortOutcome, str], addresses: tuple[str, ...] = IFACES) -> ProbeReport:
    return ProbeReport(
        HOST, DnsAnswer(DnsOutcome.OK, addresses, resolver="10.100.0.10"), _ok_ports(*outcomes)
    )


def test_a_clean_measurement_is_reachable_with_a_stable_message() -> None:
    result = classify(_report(), CTX)
    assert result.ok and result.reason is Reason.REACHABLE and result.type is ConditionType.REACHABLE
    assert result.message == (
        f"{HOST} resolves to endpoint vpce-1 (10.0.1.5, 10.0.2.7); TLS on 8443 and 9440 and GET /ping on 8443 "
        "answered 'Ok.'"
    )
    assert not needs_allow_list(_report())


@pytest.mark.parametrize(
    ("outcome", "managed", "words"),
    [
        (DnsOutcome.NXDOMAIN, True, "does not exist (NXDOMAIN)"),
        (DnsOutcome.NO_ANSWER, True, "has no A record"),
        (DnsOutcome.NO_REPLY, False, "got no answer (Timeout)"),
    ],
)
def test_a_name_that_does_not_resolve_is_dns_not_resolving(
    outcome: DnsOutcome, managed: bool, words: str
) -> None:
    report = ProbeReport(HOST, DnsAnswer(outcome, resolver="10.100.0.10", detail="Timeout"))
    result = classify(report, Context(**{**CTX.__dict__, "dns_managed": managed}))
    assert not result.ok and not result.unknown and result.reason is Reason.DNS_NOT_RESOLVING
    assert result.message.startswith(f"{HOST} (resolver 10.100.0.10) {words}: clients get 'host not found'")
    assert ("dns.mode is None" in result.message) is not managed


def test_an_answer_outside_the_endpoints_interfaces_points_elsewhere() -> None:
    result = classify(_report(addresses=("10.0.1.5", "52.1.2.3")), CTX)
    assert result.reason is Reason.DNS_POINTS_ELSEWHERE
    assert (
        "resolves to 10.0.1.5, 52.1.2.3, but endpoint vpce-1's network interfaces are 10.0.1.5, 10.0.2.7"
        in result.message
    )
    # Unknown interfaces: nothing to compare with, the ports decide.
    unknown = Context(**{**CTX.__dict__, "interface_addresses": ()})
    assert classify(_report(addresses=("52.1.2.3",)), unknown).ok


def test_a_timeout_names_the_missing_inbound_rule_when_the_groups_leave_the_port_closed() -> None:
    report = _report((9440, PortOutcome.TIMEOUT, "no answer within 5 s"))
    closed = Context(**{**CTX.__dict__, "closed_ports": (9440,), "vpc_cidrs": ("10.0.0.0/16",)})
    result = classify(report, closed)
    assert result.reason is Reason.CONNECT_TIMEOUT
    assert result.message.startswith(f"{HOST} (10.0.1.5) port 9440: connect timed out;")
    assert (
        "security groups (sg-1) admit no inbound TCP 9440 from the VPC: add an inbound rule TCP 9440 from 10.0.0.0/16"
        in result.message
    )
    open_ = Context(**{**CTX.__dict__, "closed_ports": (), "vpc_cidrs": ("10.0.0.0/16",)})
    assert "check the operator's own outbound rules" in classify(report, open_).message
    assert "check that the endpoint's security groups (sg-1) admit" in classify(report, CTX).message


def test_the_first_failing_port_in_order_wins() -> None:
    report = _report((9440, PortOutcome.TIMEOUT, ""), (8443, PortOutcome.TLS, "certificate verify failed"))
    result = classify(report, CTX)
    assert result.reason is Reason.TLS_FAILED and "port 8443" in result.message
    assert "certificate verify failed" in result.message


def test_a_reset_reads_the_allow_list_and_says_what_it_holds() -> None:
    report = _report((8443, PortOutcome.RESET, "reset by peer"))
    assert needs_allow_list(report)
    missing = classify(report, Context(**{**CTX.__dict__, "allow_list": ("vpce-other",)}))
    assert missing.reason is Reason.CONNECTION_RESET
    assert (
        "vpce-1 is not on the allow list of service analytics (privateEndpointIds, read now: vpce-other)"
        in missing.message
    )
    listed = classify(report, Context(**{**CTX.__dict__, "allow_list": ("vpce-1",)}))
    assert "is on the allow list" in listed.message and "still be applying" in listed.message
    assert "could not be read" in classify(report, CTX).message


def test_refused_and_a_wrong_ping_answer_have_their_own_reasons() -> None:
    assert classify(_report((9440, PortOutcome.REFUSED, "refused")), CTX).reason is Reason.CONNECTION_REFUSED
    ping = classify(_report((8443, PortOutcome.PING, "HTTP 503 'busy'")), CTX)
    assert ping.reason is Reason.PING_FAILED and "HTTP 503 'busy'" in ping.message


def test_skips_say_how_the_operators_place_was_found() -> None:
    assert skip_result(Placement("vpc-a", "CHPL_OPERATOR_VPC_ID"), "vpc-a") is None
    outside = skip_result(Placement("vpc-a", "CHPL_OPERATOR_VPC_ID"), "vpc-b")
    assert outside is not None and outside.unknown and outside.reason is Reason.OPERATOR_OUTSIDE_VPC
    assert "runs in vpc-a (from CHPL_OPERATOR_VPC_ID), not in vpc-b" in outside.message
    unknown = skip_result(
        Placement(None, "the instance metadata service did not answer (no connection)"), "vpc-b"
    )
    assert unknown is not None and unknown.reason is Reason.OPERATOR_VPC_UNKNOWN
    assert "instance metadata service did not answer" in unknown.message
    off = skip_result(Placement(None, "CHPL_REACHABILITY=off", enabled=False), "vpc-b")
    assert off is not None and off.reason is Reason.REACHABILITY_CHECK_OFF


def test_required_makes_a_failure_readys_reason_and_a_skip_holds_nothing_back() -> None:
    failed = classify(_report((9440, PortOutcome.TIMEOUT, "")), CTX)
    ready = ready_result(failed)
    assert ready is not None and ready.type is ConditionType.READY and ready.reason is Reason.CONNECT_TIMEOUT
    assert ready_result(classify(_report(), CTX)) is None
    skipped = skip_result(Placement("vpc-a", "x"), "vpc-b")
    assert skipped is not None and ready_result(skipped) is None


def test_a_warning_is_due_only_when_the_problem_is_new() -> None:
    failed = classify(_report((9440, PortOutcome.TIMEOUT, "")), CTX)
    assert changed_to_problem(None, None, failed)
    assert changed_to_problem("True", "Reachable", failed)
    assert not changed_to_problem("False", "ConnectTimeout", failed)
    assert not changed_to_problem("False", "ConnectTimeout", classify(_report(), CTX))


def test_the_test_only_translation_keeps_the_offset() -> None:
    cfg = ProbeConfig.from_settings(
        Settings(test_address_map="10.0.0.0/8=127.0.0.0/8", test_dns_resolver="127.0.0.1:5353")
    )
    assert cfg.dialled("10.12.34.56") == "127.12.34.56"
    assert cfg.dialled("192.168.1.1") == "192.168.1.1"
    assert cfg.resolver == ("127.0.0.1", 5353)
    with pytest.raises(ValueError, match="same prefix length"):
        ProbeConfig.from_settings(Settings(test_address_map="10.0.0.0/8=127.0.0.0/16"))


async def test_placement_comes_from_the_setting_or_says_why_it_is_unknown() -> None:
    assert (await PlacementFinder(Settings(operator_vpc_id="vpc-a")).placement()) == Placement(
        "vpc-a", "CHPL_OPERATOR_VPC_ID"
    )
    assert not (await PlacementFinder(Settings(reachability="off")).placement()).enabled
    with socket.socket() as s:  # a port nothing listens on: IMDS "not reachable"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    found = await PlacementFinder(Settings(), imds_url=f"http://127.0.0.1:{port}", timeout=1).placement()
    assert (
        found.vpc_id is None and found.how == "the instance metadata service did not answer (no connection)"
    )


# ---- the probe against real listeners on loopback

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler, ssl.SSLContext | None], Awaitable[int]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(handler: Handler, context: ssl.SSLContext | None) -> int:
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
        servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    yield start
    for srv in servers:
        srv.close()


async def _ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nOk.\n")
    await writer.drain()
    writer.close()


async def _busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n")
    await writer.drain()
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _probe(prober: Prober, port: int) -> PortProbe:
    """What the probe sees of 8443 (TLS, then GET /ping), on the test server's port."""
    return await prober.port(HOST, "127.0.0.1", port, ping=True)


async def test_the_probe_sees_ping_ok_tls_failures_resets_refusals_and_wrong_answers(
    server: Callable[[Handler, ssl.SSLContext | None], Awaitable[int]], tmp_path: Path
) -> None:
    authority = Authority(tmp_path / "ca.pem")
    context = authority.context(HOST)
    trusted = Prober(ProbeConfig(timeout=2, ca_file=str(tmp_path / "ca.pem")))
    untrusted = Prober(ProbeConfig(timeout=2))

    ok = await _probe(trusted, await server(_ping, context))
    assert ok.outcome is PortOutcome.OK, ok
    tls = await _probe(untrusted, await server(_ping, context))
    assert tls.outcome is PortOutcome.TLS and "certificate" in tls.detail
    wrong_name = await _probe(trusted, await server(_ping, authority.context("someone.else.example")))
    assert wrong_name.outcome is PortOutcome.TLS and "mismatch" in wrong_name.detail.lower()
    busy = await _probe(trusted, await server(_busy, context))
    assert busy.outcome is PortOutcome.PING and busy.detail == "HTTP 503 'busy'"
    reset = await _probe(trusted, await server(_reset, None))
    assert reset.outcome is PortOutcome.RESET
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = await trusted.port(HOST, "127.0.0.1", closed_port)
    assert refused.outcome is PortOutcome.REFUSED


@pytest.fixture
async def imds() -> AsyncIterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """A fake IMDSv2 on loopback: its URL, and every request it was sent (method, path, token header)."""
    from aiohttp import web

    seen: list[tuple[str, str, str | None]] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(
            (request.method, request.path, request.headers.get("X-aws-ec2-metadata-token-ttl-seconds"))
        )
        return web.Response(text="T0KEN")

    async def meta(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("X-aws-ec2-metadata-token")))
        if request.path.endswith("/mac"):
            return web.Response(text="0a:1b:2c:3d:4e:5f")
        return web.Response(text="vpc-0123456789abcdef0")

    app = web.Application()
    app.router.add_put("/latest/api/token", token)
    app.router.add_get("/latest/meta-data/{tail:.*}", meta)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_placement_is_read_from_the_instance_metadata_service_with_a_token(
    imds: tuple[str, list[tuple[str, str, str | None]]],
) -> None:
    """IMDSv2: a PUT for a token, then the MAC and the VPC of that interface, each with the token."""
    url, seen = imds
    found = await PlacementFinder(Settings(), imds_url=url).placement()
    assert found == Placement("vpc-0123456789abcdef0", "the instance metadata service")
    assert seen == [
        ("PUT", "/latest/api/token", "60"),
        ("GET", "/latest/meta-data/mac", "T0KEN"),
        ("GET", "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-id", "T0KEN"),
    ]


async def test_placement_never_asks_the_metadata_service_where_aws_ec2_metadata_disabled_is_set(
    imds: tuple[str, list[tuple[str, str, str | None]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests, the sandbox and the benchmark set the AWS SDKs' own switch: nothing may leave loopback."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url, seen = imds
    found = await PlacementFinder(Settings(), imds_url=url).placement()
    assert found == Placement(None, "AWS_EC2_METADATA_DISABLED is set") and seen == []
