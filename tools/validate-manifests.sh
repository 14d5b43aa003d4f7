#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml offline against Kubernetes' OpenAPI schemas, strictly
# (unknown fields are errors), with kubernetes-validate from PyPI in a venv kept outside the
# clone (PXTOP_PY_VENV, default /var/cache/pxtop-py) so CI reuses it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PXTOP_PY_VENV:-/var/cache/pxtop-py}"
VERSION=1.37.0
if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION"
fi
files=()
for f in "$ROOT"/deploy/kubernetes/*.yaml; do
  [[ "$(basename "$f")" == kustomization.yaml ]] || files+=("$f")
done
"$VENV/bin/kubernetes-validate" --strict --quiet "${files[@]}"
echo "manifests: ${#files[@]} files valid (kubernetes $VERSION schemas, strict)" >&2
# With PXTOP_BIN (a built pxtop), also what `pxtop deploy` renders: the same files moved to
# another namespace and image, plus the generated ConfigMap and Secrets.
if [[ -n "${PXTOP_BIN:-}" ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  "$PXTOP_BIN" deploy --dry-run -o yaml --namespace pxtop-check --image example.invalid/pxtopd:0 \
    > "$out/all.yaml"
  (cd "$out" && csplit -s -z -f doc all.yaml '/^---$/' '{*}' && rm all.yaml)
  "$VENV/bin/kubernetes-validate" --strict --quiet "$out"/doc*
  echo "pxtop deploy --dry-run: $(ls "$out" | wc -l) objects valid" >&2
fi
