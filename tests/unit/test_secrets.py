"""The Secret reader against the in-memory Kubernetes API, logged in with kopf's built-in kubeconfig login."""

from __future__ import annotations

import base64
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import kopf
import pytest
import yaml
from aiohttp import web

from clickhouse_privatelink.adapters.kubernetes import api as kube_api_module
from clickhouse_privatelink.adapters.kubernetes.api import ConnectionHolder, KubernetesApiError
from clickhouse_privatelink.adapters.kubernetes.login import login_for_kopf_and_secrets
from clickhouse_privatelink.adapters.kubernetes.secrets import CredentialsError, SecretReader
from clickhouse_privatelink.api.models import SecretKeyRef
from clickhouse_privatelink.constants import LABEL_API_KEY
from clickhouse_privatelink_testkit.standins.kubernetes.server import KubernetesEmulator
from tests.fixtures.kubernetes import AsyncKube

TOKEN = "tok-0f9e8d7c6b5a"  # the kubeconfig's bearer token: must never show up in an error either
KEY_ID = "key-id-visible"
KEY_SECRET = "s3cr3t-VALUE-never-printed"
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
_made: list[ConnectionHolder] = []


def _holder() -> ConnectionHolder:
    """A holder of the test's own, closed (its HTTP session) when the test ends."""
    holder = ConnectionHolder()
    _made.append(holder)
    return holder


@pytest.fixture(autouse=True)
async def _close_holders() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().aclose()


def _write_kubeconfig(path: pathlib.Path, url: str, token: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
                "current-context": "x",
            }
        ),
        encoding="utf-8",
    )


@pytest.fixture
def kubeconfig(
    kube_emulator: KubernetesEmulator, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    path = tmp_path / "kubeconfig"
    _write_kubeconfig(path, kube_emulator.url, TOKEN)
    monkeypatch.setenv("KUBECONFIG", str(path))
    yield path


@pytest.fixture
def seen(kube_emulator: KubernetesEmulator, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(path, Authorization header) of every request the stand-in gets."""
    calls: list[tuple[str, str]] = []
    route: Route = kube_emulator._route

    async def spy(request: web.Request) -> web.StreamResponse:
        calls.append((request.path, request.headers.get("Authorization", "")))
        return await route(request)

    monkeypatch.setattr(kube_emulator, "_route", spy)
    return calls


def _refuse(
    kube_emulator: KubernetesEmulator, monkeypatch: pytest.MonkeyPatch, status: int, **when: Any
) -> None:
    """Answer Secret reads with ``status`` (a Status object, as kube-apiserver sends) while ``when`` holds."""
    route: Route = kube_emulator._route

    async def refuse(request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if "/secrets/" in request.path and when.get("token", token) == token:
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f'secrets "x" is refused ({status})',
                "reason": "Forbidden" if status == 403 else "Unauthorized",
                "code": status,
            }
            return web.json_response(body, status=status)
        return await route(request)

    monkeypatch.setattr(kube_emulator, "_route", refuse)


OPTED_IN = {LABEL_API_KEY: "true"}


async def _secret(
    akube: AsyncKube,
    name: str,
    data: dict[str, str],
    namespace: str = "default",
    labels: dict[str, str] | None = None,
) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    meta = {"name": name, "labels": OPTED_IN if labels is None else labels}
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded}
    await akube.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)


def _assert_no_secret_in(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert KEY_SECRET not in text and TOKEN not in text, text


async def test_reads_the_key_with_the_kubeconfig_token(
    kubeconfig: pathlib.Path, akube: AsyncKube, seen: list[tuple[str, str]]
) -> None:
    await _secret(akube, "clickhouse-api", {"keyId": f"{KEY_ID}\n", "keySecret": KEY_SECRET})
    key = await SecretReader(_holder()).api_key("default", SecretKeyRef(name="clickhouse-api"))
    assert (key.key_id, key.key_secret) == (KEY_ID, KEY_SECRET)
    assert KEY_SECRET not in repr(key)
    reads = [call for call in seen if call[0].endswith("/clickhouse-api")]
    assert reads == [("/api/v1/namespaces/default/secrets/clickhouse-api", f"Bearer {TOKEN}")]


async def test_a_key_read_recently_is_reused_until_forgotten(
    kubeconfig: pathlib.Path, akube: AsyncKube, seen: list[tuple[str, str]]
) -> None:
    await _secret(akube, "kept", {"keyId": KEY_ID, "keySecret": KEY_SECRET})
    reader = SecretReader(_holder())
    ref = SecretKeyRef(name="kept")
    for _ in range(3):
        assert (await reader.api_key("default", ref, max_age=300)).key_secret == KEY_SECRET
    reads = lambda: [call for call in seen if call[0].endswith("/kept")]  # noqa: E731
    assert len(reads()) == 1
    await reader.api_key("default", ref)  # max_age 0: a reconcile that must see the Secret as it is now
    assert len(reads()) == 2
    reader.forget("default", "kept")
    await reader.api_key("default", ref, max_age=300)
    assert len(reads()) == 3


async def test_custom_key_names(kubeconfig: pathlib.Path, akube: AsyncKube) -> None:
    await _secret(akube, "custom", {"id": KEY_ID, "secret": KEY_SECRET})
    ref = SecretKeyRef.model_validate({"name": "custom", "keyIdKey": "id", "keySecretKey": "secret"})
    assert (await SecretReader(_holder()).api_key("default", ref)).key_secret == KEY_SECRET


UNREADABLE = (
    "Secret default/{name} is not readable by the operator: it must exist, carry the label "
    f"{LABEL_API_KEY}: \"true\" (the opt-in), and be a name the operator's RBAC allows (the chart's "
    "rbac.secretNames)"
)


async def test_missing_secret(kubeconfig: pathlib.Path, akube: AsyncKube) -> None:
    with pytest.raises(CredentialsError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="absent"))
    assert err.value.missing and str(err.value) == UNREADABLE.format(name="absent")


@pytest.mark.parametrize("labels", [{}, {LABEL_API_KEY: "false"}, {LABEL_API_KEY: "True"}, {"team": "a"}])
async def test_a_secret_without_the_opt_in_is_refused_as_if_it_did_not_exist(
    kubeconfig: pathlib.Path, akube: AsyncKube, labels: dict[str, str]
) -> None:
    await _secret(akube, "db-credentials", {"keyId": KEY_ID, "keySecret": KEY_SECRET}, labels=labels)
    with pytest.raises(CredentialsError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="db-credentials"))
    # The same words as for a Secret that does not exist: nothing about its existence or its keys.
    assert err.value.missing and str(err.value) == UNREADABLE.format(name="db-credentials")
    _assert_no_secret_in(err.value)


async def test_a_policy_may_waive_the_opt_in(kubeconfig: pathlib.Path, akube: AsyncKube) -> None:
    await _secret(akube, "plain", {"keyId": KEY_ID, "keySecret": KEY_SECRET}, labels={})
    reader = SecretReader(_holder())
    key = await reader.api_key("default", SecretKeyRef(name="plain"), require_opt_in=False)
    assert key.key_secret == KEY_SECRET
    with pytest.raises(CredentialsError):  # what was read without the opt-in never serves those who need it
        await reader.api_key("default", SecretKeyRef(name="plain"), max_age=300)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"keyId": KEY_ID}, "has no key 'keySecret'"),
        ({"keySecret": KEY_SECRET}, "has no key 'keyId'"),
        ({"keyId": KEY_ID, "keySecret": "  \n"}, "key 'keySecret' is empty"),
    ],
)
async def test_missing_or_empty_key(
    kubeconfig: pathlib.Path, akube: AsyncKube, data: dict[str, str], problem: str
) -> None:
    await _secret(akube, "partial", data)
    with pytest.raises(CredentialsError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="partial"))
    assert not err.value.missing and str(err.value) == f"Secret default/partial {problem}"
    _assert_no_secret_in(err.value)


async def test_key_that_is_not_text(kubeconfig: pathlib.Path, akube: AsyncKube) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "binary", "labels": OPTED_IN},
        "data": {"keyId": base64.b64encode(b"\xff\xfe" + KEY_SECRET.encode()).decode(), "keySecret": "eA=="},
    }
    await akube.request("POST", "/api/v1/namespaces/default/secrets", body=body)
    with pytest.raises(CredentialsError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="binary"))
    assert not err.value.missing and "key 'keyId' is not valid UTF-8 text" in str(err.value)
    _assert_no_secret_in(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


async def test_forbidden_says_what_to_check(
    kubeconfig: pathlib.Path,
    akube: AsyncKube,
    kube_emulator: KubernetesEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _secret(akube, "clickhouse-api", {"keyId": KEY_ID, "keySecret": KEY_SECRET})
    _refuse(kube_emulator, monkeypatch, 403)
    with pytest.raises(CredentialsError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="clickhouse-api"))
    assert err.value.missing and str(err.value) == UNREADABLE.format(name="clickhouse-api")
    _assert_no_secret_in(err.value)


async def test_unauthorized_logs_in_again_with_the_rotated_token(
    kubeconfig: pathlib.Path,
    akube: AsyncKube,
    kube_emulator: KubernetesEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 401 (e.g. an expired service-account token) reads the credentials again and retries once."""
    await _secret(akube, "clickhouse-api", {"keyId": KEY_ID, "keySecret": KEY_SECRET})
    holder = _holder()
    reader = SecretReader(holder)
    assert (await reader.api_key("default", SecretKeyRef(name="clickhouse-api"))).key_id == KEY_ID
    _refuse(kube_emulator, monkeypatch, 401, token=TOKEN)  # the old token is refused from now on
    _write_kubeconfig(kubeconfig, kube_emulator.url, "tok-rotated")
    assert (await reader.api_key("default", SecretKeyRef(name="clickhouse-api"))).key_id == KEY_ID
    assert holder.info is not None and holder.info.token == "tok-rotated"


async def test_still_unauthorized_after_a_fresh_login_is_an_api_error_without_the_token(
    kubeconfig: pathlib.Path,
    akube: AsyncKube,
    kube_emulator: KubernetesEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refuse(kube_emulator, monkeypatch, 401)
    with pytest.raises(KubernetesApiError) as err:
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="clickhouse-api"))
    assert err.value.status == 401 and "401 Unauthorized" in str(err.value)
    _assert_no_secret_in(err.value)


async def test_unreachable_api_is_an_api_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeconfig"
    _write_kubeconfig(path, "http://127.0.0.1:9", TOKEN)  # discard port: nothing listens
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(KubernetesApiError) as err:
        await SecretReader(_holder(), timeout=2.0).api_key("default", SecretKeyRef(name="x"))
    assert err.value.status == 0 and "cannot reach the Kubernetes API at http://127.0.0.1:9" in str(err.value)
    _assert_no_secret_in(err.value)


async def test_no_credentials_at_all(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setattr(kube_api_module, "SERVICE_ACCOUNT_TOKEN", str(tmp_path / "no-token"))
    with pytest.raises(KubernetesApiError, match="no Kubernetes credentials"):
        await SecretReader(_holder()).api_key("default", SecretKeyRef(name="x"))


async def test_the_kopf_login_handler_shares_its_connection_with_the_reader(
    kubeconfig: pathlib.Path, akube: AsyncKube
) -> None:
    holder = _holder()
    info = login_for_kopf_and_secrets(kopf.OperatorSettings(), holder)
    assert info is not None and info.token == TOKEN and holder.info is info
    await _secret(akube, "clickhouse-api", {"keyId": KEY_ID, "keySecret": KEY_SECRET})
    reader = SecretReader(holder)
    assert (await reader.api_key("default", SecretKeyRef(name="clickhouse-api"))).key_id == KEY_ID
    assert holder.info is info  # the reader used the login, it did not log in again


def test_the_operator_runs_without_the_kubernetes_client() -> None:
    """The image has no `kubernetes` package: everything the operator runs imports without it."""
    code = (
        "import sys\n"
        "sys.modules['kubernetes'] = None  # as in the image: `import kubernetes` raises ImportError\n"
        "import clickhouse_privatelink.cli, clickhouse_privatelink.wiring.runner\n"
        "import clickhouse_privatelink.wiring.handlers, clickhouse_privatelink.adapters.kubernetes.login\n"
        "import kopf\n"
        "from kopf._core.intents import piggybacking\n"
        "assert not piggybacking.has_client()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
