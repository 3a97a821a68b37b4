"""`helm test`: every replica of the operator answers kopf's /healthz, its CRD is served, and each replica's
metrics answer with exactly one replica active. Run by the operator's own image (Python, standard library
only); its settings come from the Pod's environment (templates/tests/test-operator.yaml)."""

import json
import os
import ssl
import sys
import time
import urllib.request

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://{KUBERNETES_SERVICE_HOST}:{KUBERNETES_SERVICE_PORT}".format(**os.environ)
POLL_SECONDS = 2.0


def kube(path):
    """GET a Kubernetes API path with the Pod's ServiceAccount token."""
    with open(f"{ACCOUNT}/token", encoding="utf-8") as f:
        token = f.read().strip()
    request = urllib.request.Request(API + path, headers={"Authorization": f"Bearer {token}"})
    tls = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt") if API.startswith("https:") else None
    with urllib.request.urlopen(request, context=tls, timeout=10) as response:
        return json.load(response)


def replica_url(env, ordinal, port, path):
    """A replica's endpoint, through the headless Service's per-pod DNS name."""
    host = f"{env['STATEFULSET']}-{ordinal}.{env['SERVICE']}.{env['NAMESPACE']}.svc"
    return f"http://{host}:{port}{path}"


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def until(deadline, what, check):
    """Poll ``check`` (returns (ok, detail)) until it is ok or the deadline passes; exit 1 then."""
    detail = None
    while True:
        try:
            ok, detail = check()
        except Exception as error:  # noqa: BLE001 - any failure is retried until the deadline, then shown
            ok, detail = False, repr(error)
        if ok:
            print(f"ok: {what}: {detail}", flush=True)
            return detail
        if time.monotonic() >= deadline:
            print(f"FAILED: {what}: {detail}", flush=True)
            sys.exit(1)
        time.sleep(POLL_SECONDS)


def main(env):
    deadline = time.monotonic() + float(env["TIMEOUT_SECONDS"])
    replicas = range(int(env["REPLICAS"]))

    def running():
        for ordinal in replicas:
            get(replica_url(env, ordinal, env["HEALTH_PORT"], "/healthz"))
        return len(replicas) > 0, f"{len(replicas)} replica(s) answer /healthz"

    def crd_served():
        resources = kube(f"/apis/{env['GROUP']}/{env['VERSION']}")["resources"]
        return env["PLURAL"] in {r["name"] for r in resources}, f"{env['PLURAL']}.{env['GROUP']}/{env['VERSION']}"

    def one_active():
        active = {}
        for ordinal in replicas:
            url = replica_url(env, ordinal, env["METRICS_PORT"], "/metrics")
            text = get(url)
            if "chpl_build_info{" not in text:
                return False, f"{url}: no chpl_build_info"
            values = [line.split()[-1] for line in text.splitlines() if line.startswith("chpl_active ")]
            active[url] = float(values[0]) if values else 0.0
        return sum(active.values()) == 1, f"chpl_active {active}"

    until(deadline, "operator running", running)
    until(deadline, "CRD served", crd_served)
    if env.get("METRICS_PORT"):
        until(deadline, "metrics answer, exactly one replica active", one_active)
    print("helm test passed", flush=True)


if __name__ == "__main__":
    main(os.environ)
