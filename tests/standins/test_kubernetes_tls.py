"""Client-certificate kubeconfigs (kind's, kubeadm's admin.conf) against a TLS server that authenticates by them.

The Kubernetes stand-in speaks plain HTTP, so a small HTTPS server stands in for kube-apiserver's authenticator
here: it verifies the client certificate against the cluster CA and answers with the user it names (its common
name), or ``system:anonymous`` without one, as kube-apiserver would. Both the e2e suite's own client and the
operator's login (kopf's) must arrive as the certificate's user, whether the kubeconfig carries the PEMs inline
(``*-data``) or as file paths.
"""

from __future__ import annotations

import base64
import json
import pathlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
import yaml

from clickhouse_privatelink.adapters.kubernetes.api import ConnectionHolder, get_json
from tests.fixtures.kubernetes import KubeClient

USER = "e2e-admin"
PATH = "/api/v1/namespaces/default/secrets/whoami"


class _WhoAmI(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.connection, ssl.SSLSocket)
        peer = self.connection.getpeercert() or {}
        names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
        body = json.dumps({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": names[0] if names else
                           "system:anonymous"}}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[str]:
    """``https://127.0.0.1:PORT``: the cluster CA's server certificate, client certificates optional."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WhoAmI)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _kubeconfig(
    directory: pathlib.Path, server: str, ca: trustme.CA, *, inline: bool, cert: bool
) -> pathlib.Path:
    """A kubeconfig as kind (inline ``*-data``) or a hand-made one (file paths) writes it."""
    client = ca.issue_cert(f"{USER}@example.com", common_name=USER)
    pems = {
        "certificate-authority": ca.cert_pem.bytes(),
        "client-certificate": client.cert_chain_pems[0].bytes(),
        "client-key": client.private_key_pem.bytes(),
    }
    fields: dict[str, str] = {}
    for key, pem in pems.items():
        if inline:
            fields[f"{key}-data"] = base64.b64encode(pem).decode()
        else:
            path = directory / f"{key}.pem"
            path.write_bytes(pem)
            fields[key] = str(path)
    cluster = {"server": server, **{k: v for k, v in fields.items() if k.startswith("certificate-authority")}}
    user = {k: v for k, v in fields.items() if k.startswith("client-")} if cert else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tls", "cluster": cluster}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "tls", "context": {"cluster": "tls", "user": "admin"}}],
        "current-context": "tls",
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("inline", [True, False], ids=["inline-data", "file-paths"])
def test_the_e2e_client_presents_the_kubeconfig_client_certificate(
    server: str, ca: trustme.CA, tmp_path: pathlib.Path, inline: bool
) -> None:
    client = KubeClient(_kubeconfig(tmp_path, server, ca, inline=inline, cert=True))
    try:
        assert client.get("v1", "secrets", "whoami", "default")["metadata"]["name"] == USER
    finally:
        client.close()


def test_without_a_client_certificate_the_server_sees_an_anonymous_user(
    server: str, ca: trustme.CA, tmp_path: pathlib.Path
) -> None:
    client = KubeClient(_kubeconfig(tmp_path, server, ca, inline=True, cert=False))
    try:
        assert client.get("v1", "secrets", "whoami", "default")["metadata"]["name"] == "system:anonymous"
    finally:
        client.close()


@pytest.mark.parametrize("inline", [True, False], ids=["inline-data", "file-paths"])
async def test_the_operator_logs_in_with_a_client_certificate_kubeconfig(
    server: str, ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, server, ca, inline=inline, cert=True)))
    holder = ConnectionHolder()
    try:
        found = await get_json(PATH, connection=holder)
    finally:
        await holder.aclose()
    assert found is not None and found["metadata"]["name"] == USER
