"""The reachability probe's I/O: DNS through the pod's resolver, TCP, TLS with SNI, ``GET /ping``; and where the
operator runs (its VPC, from a setting or the instance metadata service). Classification: decisions/reachability.py.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import certifi
import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
import h11

from clickhouse_privatelink.decisions.reachability import (
    PING_ANSWER,
    PING_PORT,
    PROBED_PORTS,
    DnsAnswer,
    DnsOutcome,
    Placement,
    PortOutcome,
    PortProbe,
    ProbeReport,
)
from clickhouse_privatelink.settings import Settings

IMDS = "http://169.254.169.254"
_MAX_PING_BYTES = 65536


@dataclass(frozen=True)
class ProbeConfig:
    timeout: float = 5.0
    # Test-only (CHPL_TEST_*): a resolver instead of /etc/resolv.conf's, an address translation, an extra CA.
    resolver: tuple[str, int] | None = None
    address_map: tuple[ipaddress.IPv4Network, ipaddress.IPv4Network] | None = None
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeConfig:
        resolver = None
        if settings.test_dns_resolver:
            host, _, port = settings.test_dns_resolver.rpartition(":")
            resolver = (host, int(port))
        mapping = None
        if settings.test_address_map:
            src, _, dst = settings.test_address_map.partition("=")
            a, b = ipaddress.IPv4Network(src.strip()), ipaddress.IPv4Network(dst.strip())
            if a.prefixlen != b.prefixlen:
                raise ValueError("CHPL_TEST_ADDRESS_MAP: both blocks must have the same prefix length")
            mapping = (a, b)
        return cls(
            timeout=settings.reachability_timeout,
            resolver=resolver,
            address_map=mapping,
            ca_file=settings.test_ca_file,
        )

    def dialled(self, address: str) -> str:
        """Where ``address`` is dialled: itself, or its place in the test-only translation."""
        if self.address_map is None:
            return address
        src, dst = self.address_map
        ip = ipaddress.IPv4Address(address)
        if ip not in src:
            return address
        return str(dst.network_address + (int(ip) - int(src.network_address)))

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certifi.where())
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context


# How long a probe waits for the server's side of the TLS close (close_notify) before it drops the connection.
CLOSE_GRACE = 0.5


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a probe's connection without waiting on the server: uvloop's TLS transport reports closed only
    once the peer answers the close_notify, and a peer that never does would hold a check for its timeout."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)
    except Exception:  # timed out or failed: either way the probe is done with the connection
        writer.transport.abort()


class Prober:
    """Measures one private hostname from here. One instance per process (it keeps the TLS context)."""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self._tls = config.tls_context()

    async def resolve(self, hostname: str) -> DnsAnswer:
        cfg = self.config
        resolver = dns.asyncresolver.Resolver(configure=cfg.resolver is None)
        if cfg.resolver is not None:
            resolver.nameservers = [cfg.resolver[0]]
            resolver.port = cfg.resolver[1]
        asked = ", ".join(str(n) for n in resolver.nameservers)
        if cfg.resolver is not None:
            asked = f"{cfg.resolver[0]}:{cfg.resolver[1]}"
        try:
            # An absolute name: a pod's search domains (ndots 5) would only add wrong guesses.
            answer = await resolver.resolve(hostname.rstrip(".") + ".", dns.rdatatype.A, lifetime=cfg.timeout)
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(DnsOutcome.NXDOMAIN, resolver=asked)
        except dns.resolver.NoAnswer:
            return DnsAnswer(DnsOutcome.NO_ANSWER, resolver=asked)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            return DnsAnswer(DnsOutcome.NO_REPLY, resolver=asked, detail=type(exc).__name__)
        addresses = tuple(sorted({r.to_text() for r in answer}))
        return DnsAnswer(DnsOutcome.OK, addresses, resolver=asked)

    async def port(self, hostname: str, address: str, port: int, *, ping: bool | None = None) -> PortProbe:
        """TCP to ``address:port``, TLS with ``hostname`` as SNI, and on the ping port (or with ``ping``)
        ``GET /ping``."""
        timeout = self.config.timeout
        target = self.config.dialled(address)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (target, port)), timeout)
        except TimeoutError:
            sock.close()
            return PortProbe(address, port, PortOutcome.TIMEOUT, f"no answer within {timeout:g} s")
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ECONNREFUSED:
                return PortProbe(address, port, PortOutcome.REFUSED, "refused")
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                return PortProbe(address, port, PortOutcome.RESET, "reset while connecting")
            return PortProbe(address, port, PortOutcome.TIMEOUT, exc.strerror or type(exc).__name__)
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=self._tls, server_hostname=hostname, ssl_handshake_timeout=timeout
            )
            if not (port == PING_PORT if ping is None else ping):
                return PortProbe(address, port, PortOutcome.OK)
            return await asyncio.wait_for(self._ping(hostname, reader, writer, address, port), timeout)
        except ssl.SSLCertVerificationError as exc:
            return PortProbe(
                address, port, PortOutcome.TLS, exc.verify_message or exc.reason or "verify failed"
            )
        except ssl.SSLError as exc:
            return PortProbe(address, port, PortOutcome.TLS, exc.reason or str(exc))
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
            return PortProbe(address, port, PortOutcome.RESET, "reset by peer")
        except TimeoutError:
            what = "/ping" if writer is not None else "the TLS handshake"
            kind = PortOutcome.PING if writer is not None else PortOutcome.TLS
            return PortProbe(address, port, kind, f"{what} timed out")
        except ConnectionError as exc:
            return PortProbe(address, port, PortOutcome.RESET, type(exc).__name__)
        except h11.ProtocolError as exc:
            return PortProbe(address, port, PortOutcome.PING, f"not HTTP ({exc})")
        finally:
            if writer is not None:
                await _close(writer)
            else:
                sock.close()

    async def _ping(
        self,
        hostname: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        address: str,
        port: int,
    ) -> PortProbe:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target="/ping",
            headers=[("Host", f"{hostname}:{port}"), ("Connection", "close")],
        )
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(4096)
                if not data and status == 0:
                    return PortProbe(address, port, PortOutcome.RESET, "closed before answering /ping")
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
                if len(body) > _MAX_PING_BYTES:
                    break
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        text = body.decode("utf-8", "replace").strip()
        if status == 200 and text == PING_ANSWER:
            return PortProbe(address, port, PortOutcome.OK)
        return PortProbe(address, port, PortOutcome.PING, f"HTTP {status} {text[:60]!r}")

    async def measure(self, hostname: str, ports: Sequence[int] = PROBED_PORTS) -> ProbeReport:
        """Resolve, then probe every address on every port side by side."""
        answer = await self.resolve(hostname)
        if answer.outcome is not DnsOutcome.OK:
            return ProbeReport(hostname, answer)
        probes = await asyncio.gather(*(self.port(hostname, a, p) for p in ports for a in answer.addresses))
        return ProbeReport(hostname, answer, tuple(probes))


class PlacementFinder:
    """Which VPC the operator runs in: from CHPL_OPERATOR_VPC_ID, else asked once of the instance metadata
    service (IMDSv2; on EKS pods reach it when the node's hop limit allows). One answer per process."""

    def __init__(self, settings: Settings, *, imds_url: str = IMDS, timeout: float = 1.0) -> None:
        self._settings = settings
        self._imds = imds_url
        self._timeout = timeout
        self._found: Placement | None = None
        self._lock = asyncio.Lock()

    async def placement(self) -> Placement:
        if self._found is not None:
            return self._found
        async with self._lock:
            if self._found is None:
                self._found = await self._find()
        return self._found

    async def _find(self) -> Placement:
        s = self._settings
        if s.reachability == "off":
            return Placement(None, "CHPL_REACHABILITY=off", enabled=False)
        if s.operator_vpc_id:
            return Placement(s.operator_vpc_id, "CHPL_OPERATOR_VPC_ID")
        if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
            # The AWS SDKs' own switch: where it is set, nothing may ask the metadata service.
            return Placement(None, "AWS_EC2_METADATA_DISABLED is set")
        try:
            # Never through a proxy (HTTP_PROXY): the metadata service answers only on the link itself.
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with aiohttp.ClientSession(self._imds, timeout=timeout, trust_env=False) as imds:
                ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
                async with imds.put("/latest/api/token", headers=ttl, raise_for_status=True) as answer:
                    headers = {"X-aws-ec2-metadata-token": await answer.text()}
                async with imds.get(
                    "/latest/meta-data/mac", headers=headers, raise_for_status=True
                ) as answer:
                    mac = (await answer.text()).strip()
                path = f"/latest/meta-data/network/interfaces/macs/{mac}/vpc-id"
                async with imds.get(path, headers=headers, raise_for_status=True) as answer:
                    vpc_id = (await answer.text()).strip()
        except aiohttp.ClientResponseError as exc:
            why = f"the instance metadata service answered HTTP {exc.status}"
            return Placement(None, why)
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = (
                "no connection"
                if isinstance(exc, aiohttp.ClientConnectorError)
                else "timed out"
                if isinstance(exc, TimeoutError)
                else type(exc).__name__
            )
            return Placement(None, f"the instance metadata service did not answer ({what})")
        return Placement(vpc_id, "the instance metadata service")
