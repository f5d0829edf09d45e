#!/usr/bin/env bash
# Lints and renders the Helm chart deploy/helm/jikji with several value sets and validates
# every rendered manifest against the Kubernetes schemas (kubernetes-validate, from PyPI;
# the InferencePool and KEDA ScaledObject are custom resources without a schema there and
# are checked as YAML only). yamllint checks the chart's plain YAML files.
#
# `helm` itself must be on PATH: it is a Go program, and this project's machines reach
# neither Go's module proxy nor a Debian, PyPI or npm package that ships it. Without it the
# script says so and checks what it can (exit 0), unless JIKJI_REQUIRE_HELM=1.
set -euo pipefail
cd "$(dirname "$0")/.."
CHART=deploy/helm/jikji
pip_install() {
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
}
python3 -c "import yamllint" 2>/dev/null || pip_install yamllint
python3 -m yamllint -d "{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}}}" \
  "$CHART/Chart.yaml" "$CHART/values.yaml"
echo "helm-check: yamllint clean (Chart.yaml, values.yaml)"
if ! command -v helm >/dev/null; then
  echo "helm-check: helm is not installed here; lint and render skipped" >&2
  [ "${JIKJI_REQUIRE_HELM:-0}" = 1 ] && exit 1
  exit 0
fi
python3 -c "import kubernetes_validate" 2>/dev/null || pip_install kubernetes-validate
helm lint --strict "$CHART"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
i=0
for set in "" \
  "modelCache.type=persistentVolumeClaim,autoscaling.enabled=true" \
  "autoscaling.enabled=true,autoscaling.kind=keda,keys.enabled=false" \
  "inferencePool.enabled=true,audit.enabled=true,audit.content=true,keys.existingSecret=my-keys"; do
  i=$((i + 1))
  helm template test "$CHART" ${set:+--set "$set"} >"$OUT/$i.yaml"
  python3 - "$OUT/$i.yaml" "$OUT/$i" <<'PY'
import pathlib, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
out = pathlib.Path(sys.argv[2]); out.mkdir()
for n, d in enumerate(docs):
    if d.get("apiVersion", "").endswith(("inference.networking.k8s.io/v1", "keda.sh/v1alpha1")):
        continue
    (out / f"{n}.yaml").write_text(yaml.safe_dump(d))
PY
  kubernetes-validate --strict "$OUT/$i"/*.yaml
  echo "helm-check: values set $i (${set:-defaults}) renders and validates"
done
