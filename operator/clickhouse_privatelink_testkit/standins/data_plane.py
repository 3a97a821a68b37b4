"""The data plane of one VPC: a DNS resolver and the endpoints' network interfaces, for the Reachable check.

What a client in the VPC meets, built from the other stand-ins' state (read every ``--interval`` seconds):

- **DNS** (dnslib, UDP on loopback): answers A queries from the AWS stand-in's Route 53 private zones
  associated with ``--vpc-id``: an alias to an endpoint's DNS name answers the endpoint's network-interface
  addresses, a plain A record its values; a name no zone holds is NXDOMAIN.
- **Interfaces**: for each network interface of each available endpoint in the VPC, listeners on 8443 and
  9440 at the interface's address translated into loopback (``ADDRESS_MAP``: ``10.a.b.c`` is served on
  ``127.a.b.c``; the operator is told the same translation with the test-only ``CHPL_TEST_ADDRESS_MAP``). A
  port the endpoint's security groups do not admit from the VPC (decisions.security_groups, as on AWS) is a
  blackhole: a listener whose accept queue is kept full, so a connection times out. Otherwise the listener
  speaks TLS with a certificate for the SNI name from the stand-in's own CA (``--ca-file``, trusted by the
  operator through the test-only ``CHPL_TEST_CA_FILE``), and **resets** the connection when the endpoint is not
  on the allow list (``privateEndpointIds``) of the ClickHouse stand-in's service with that private hostname;
  an endpoint added to an allow list is honoured ``--allow-list-delay`` seconds after it is first seen (ClickHouse
  applies the change after a while). On 8443 ``GET /ping`` answers ``Ok.``. While the file ``--rogue-file``
  exists the certificates come from a second CA nobody trusts (what a TLS-intercepting proxy does).

``clickhouse-privatelink-testkit standin dataplane --aws-url URL --clickhouse-url URL --vpc-id VPC --ca-file F``
prints ``data-plane stand-in serving on HOST:PORT`` (the DNS server) once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import signal
import socket
import ssl
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from clickhouse_privatelink.adapters.aws.security_groups import describe, vpc_cidrs
from clickhouse_privatelink.decisions.reachability import PING_PORT, PROBED_PORTS
from clickhouse_privatelink.decisions.security_groups import check_ports
from clickhouse_privatelink_testkit.standins.aws import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

# moto gives an endpoint's interfaces addresses in 10.0.0.0/8; they are served at the same offset on loopback.
ADDRESS_MAP = "10.0.0.0/8=127.0.0.0/8"
_SRC, _DST = (ipaddress.IPv4Network(n) for n in ADDRESS_MAP.split("="))


def served_at(address: str) -> str:
    """Where an interface address is served on this machine."""
    ip = ipaddress.IPv4Address(address)
    return str(_DST.network_address + (int(ip) - int(_SRC.network_address))) if ip in _SRC else address


def _name(value: str) -> str:
    return value.rstrip(".").lower()


@dataclass(frozen=True)
class Interface:
    address: str  # the interface's own address (what DNS answers)
    endpoint_id: str
    closed_ports: tuple[int, ...]  # not admitted by the endpoint's security groups


@dataclass
class View:
    """The VPC as the data plane sees it now."""

    records: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> addresses
    zones: tuple[str, ...] = ()  # the private zones' names
    interfaces: dict[str, Interface] = field(default_factory=dict)  # by served address
    allowed: dict[str, set[str]] = field(default_factory=dict)  # private hostname -> endpoint IDs honoured


class Observer:
    """Reads the AWS and ClickHouse stand-ins into a ``View`` (blocking: runs in a thread)."""

    def __init__(self, aws_url: str, clickhouse_url: str, vpc_id: str, region: str, delay: float) -> None:
        session = boto3.Session(
            aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET_KEY, region_name=region
        )
        self.ec2: Any = session.client("ec2", endpoint_url=aws_url)
        self.r53: Any = session.client("route53", endpoint_url=aws_url)
        self.control = httpx.Client(base_url=clickhouse_url.rstrip("/") + "/_control", timeout=10)
        self.vpc_id, self.region, self.delay = vpc_id, region, delay
        self._first_seen: dict[tuple[str, str], float] = {}

    def read(self) -> View:
        view = View()
        endpoints = self.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])
        live = [e for e in endpoints["VpcEndpoints"] if e["State"] == "available"]
        if not live:
            self._first_seen.clear()
            return view  # an idle VPC costs the other stand-ins one call per look
        by_dns: dict[str, tuple[str, ...]] = {}
        cidrs = vpc_cidrs(self.ec2, self.vpc_id) if live else []
        for endpoint in live:
            eni_ids = endpoint.get("NetworkInterfaceIds", [])
            enis = (
                self.ec2.describe_network_interfaces(NetworkInterfaceIds=eni_ids)["NetworkInterfaces"]
                if eni_ids
                else []
            )
            addresses = tuple(sorted(e["PrivateIpAddress"] for e in enis))
            groups = describe(self.ec2, [g["GroupId"] for g in endpoint.get("Groups", [])])
            closed = check_ports(groups, cidrs, PROBED_PORTS).closed
            for address in addresses:
                view.interfaces[served_at(address)] = Interface(address, endpoint["VpcEndpointId"], closed)
            for entry in endpoint.get("DnsEntries", []):
                by_dns[_name(entry["DnsName"])] = addresses
        zones = self.r53.list_hosted_zones_by_vpc(VPCId=self.vpc_id, VPCRegion=self.region)[
            "HostedZoneSummaries"
        ]
        view.zones = tuple(_name(z["Name"]) for z in zones)
        for zone in zones:
            sets = self.r53.list_resource_record_sets(HostedZoneId=zone["HostedZoneId"])["ResourceRecordSets"]
            for rs in sets:
                if rs["Type"] != "A":
                    continue
                if "AliasTarget" in rs:
                    target = by_dns.get(_name(rs["AliasTarget"]["DNSName"]), ())
                else:
                    target = tuple(r["Value"] for r in rs.get("ResourceRecords", []))
                if target:
                    view.records[_name(rs["Name"])] = target
        now = time.monotonic()
        seen: set[tuple[str, str]] = set()
        for service in self.control.get("/state").raise_for_status().json()["services"]:
            host = _name(service.get("private_dns_hostname") or "")
            for endpoint_id in service.get("private_endpoint_ids") or []:
                pair = (host, endpoint_id)
                seen.add(pair)
                first = self._first_seen.setdefault(pair, now)
                if now - first >= self.delay:
                    view.allowed.setdefault(host, set()).add(endpoint_id)
        for pair in set(self._first_seen) - seen:
            del self._first_seen[pair]  # removed: honoured at once, and a new addition waits again
        return view


class Resolver(BaseResolver):  # type: ignore[misc]
    """Answers A queries from the current ``View``."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname)
        addresses = self.plane.view.records.get(_name(qname))
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(address), ttl=1))
        return reply


class _QuietHandler(DNSHandler):  # type: ignore[misc]
    def log_request(self, *_: Any) -> None:
        return None


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class Authority:
    """A self-signed CA (written to ``ca_file``) and a certificate for each SNI name asked for; and a second,
    rogue CA nobody trusts, whose certificates are presented while ``rogue`` is set (as a TLS-intercepting
    proxy's would be). EC keys: cheap to make."""

    def __init__(self, ca_file: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="chpl-dataplane-"))
        self._cas = {False: _ca("chpl data-plane stand-in CA"), True: _ca("rogue CA")}
        ca_file.write_bytes(self._cas[False][1].public_bytes(serialization.Encoding.PEM))
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self.rogue = False
        self.names: dict[int, str] = {}  # the SNI name each handshake in progress asked for, by id(SSLObject)
        self.default = self.context("unknown.invalid")
        self.default.sni_callback = self._pick

    def _pick(self, obj: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name:
            self.names[id(obj)] = _name(server_name)
            obj.context = self.context(_name(server_name), rogue=self.rogue)

    def context(self, hostname: str, *, rogue: bool = False) -> ssl.SSLContext:
        found = self._contexts.get((hostname, rogue))
        if found is not None:
            return found
        ca_key, ca = self._cas[rogue]
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        path = self._dir / f"{len(self._contexts)}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(path)
        self._contexts[(hostname, rogue)] = context
        return context


class Listener:
    """One (address, port): serving, or a blackhole whose accept queue is full (connections time out)."""

    def __init__(self, plane: DataPlane, address: str, port: int, blackhole: bool) -> None:
        self.plane, self.address, self.port, self.blackhole = plane, address, port, blackhole
        self._server: asyncio.AbstractServer | None = None
        self._sockets: list[socket.socket] = []

    async def start(self) -> None:
        if self.blackhole:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.listen(0)  # one connection fills the queue; Linux then drops SYNs: connects time out
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((self.address, self.port))
            self._sockets = [sock, filler]
        else:
            self._server = await asyncio.start_server(
                self._serve, self.address, self.port, reuse_address=True
            )

    async def stop(self) -> None:
        for sock in self._sockets:
            sock.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._session(reader, writer), 10)
        except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        authority = self.plane.authority
        tls = authority.default.wrap_bio(incoming, outgoing, server_side=True)
        try:
            await self._converse(tls, incoming, outgoing, reader, writer)
        finally:
            authority.names.pop(id(tls), None)

    async def _converse(
        self,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                name = self.plane.authority.names.get(id(tls))
                if name is not None and not self._allowed(name):
                    _reset(writer)  # as ClickHouse does for an endpoint not on the service's allow list
                    return
                if outgoing.pending:
                    writer.write(outgoing.read())
                    await writer.drain()
                data = await reader.read(16384)
                if not data:
                    return
                incoming.write(data)
        if outgoing.pending:
            writer.write(outgoing.read())
            await writer.drain()
        if self.port != PING_PORT:
            await reader.read(1)  # the native protocol: the client speaks first; the probe only closes
            return
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += tls.read(4096)
                continue
            except ssl.SSLWantReadError:
                data = await reader.read(16384)
                if not data:
                    return
                incoming.write(data)
        path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
        status, body = (b"200 OK", b"Ok.\n") if path == b"/ping" else (b"404 Not Found", b"not found\n")
        tls.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        writer.write(outgoing.read())
        await writer.drain()

    def _allowed(self, hostname: str) -> bool:
        interface = self.plane.view.interfaces.get(self.address)
        return interface is not None and interface.endpoint_id in self.plane.view.allowed.get(hostname, set())


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class DataPlane:
    def __init__(
        self, observer: Observer, authority: Authority, *, interval: float, rogue_file: Path | None = None
    ) -> None:
        self.observer, self.authority, self.interval = observer, authority, interval
        self.rogue_file = rogue_file
        self.view = View()
        self._listeners: dict[tuple[str, int], Listener] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.view = await asyncio.to_thread(self.observer.read)
            except Exception as exc:  # a stand-in restarting: keep the last view
                print(f"data-plane: read failed: {exc}", flush=True)
            self.authority.rogue = self.rogue_file is not None and self.rogue_file.exists()
            await self._converge()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        for listener in self._listeners.values():
            await listener.stop()

    async def _converge(self) -> None:
        wanted = {
            (served, port): port in interface.closed_ports
            for served, interface in self.view.interfaces.items()
            for port in PROBED_PORTS
        }
        for key, listener in list(self._listeners.items()):
            if wanted.get(key) != listener.blackhole:
                await listener.stop()
                del self._listeners[key]
        for (address, port), blackhole in wanted.items():
            if (address, port) in self._listeners:
                continue
            listener = Listener(self, address, port, blackhole)
            try:
                await listener.start()
            except OSError as exc:
                print(f"data-plane: cannot listen on {address}:{port}: {exc}", flush=True)
                continue
            self._listeners[(address, port)] = listener


def main(*, host: str, port: int, argv: list[str]) -> int:
    """Serve the data plane in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="clickhouse-privatelink-testkit standin dataplane")
    parser.add_argument("--aws-url", required=True)
    parser.add_argument("--clickhouse-url", required=True)
    parser.add_argument("--vpc-id", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--ca-file", required=True, help="where the CA certificate is written (PEM)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between reads of the stand-ins")
    parser.add_argument(
        "--allow-list-delay", type=float, default=0.0, help="seconds before an added entry works"
    )
    parser.add_argument(
        "--rogue-file", default=None, help="while this file exists, certificates come from a CA nobody trusts"
    )
    args = parser.parse_args(argv)

    authority = Authority(Path(args.ca_file))
    observer = Observer(args.aws_url, args.clickhouse_url, args.vpc_id, args.region, args.allow_list_delay)
    rogue = Path(args.rogue_file) if args.rogue_file else None
    plane = DataPlane(observer, authority, interval=args.interval, rogue_file=rogue)
    dns = DNSServer(Resolver(plane), address=host, port=port, handler=_QuietHandler)
    dns.start_thread()
    bound = dns.server.server_address
    print(f"data-plane stand-in serving on {bound[0]}:{bound[1]}", flush=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await plane.run(stop)

    asyncio.run(serve())
    dns.stop()
    return 0


__all__ = ["ADDRESS_MAP", "DataPlane", "main", "served_at"]
