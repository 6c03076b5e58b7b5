#!/usr/bin/env bash
# lint_deploy.sh: check the Containerfile with hadolint, the built-in Kubernetes manifests of deploy/
# (the PersistentVolumeClaims, the Job) with kubernetes-validate in strict mode (an unknown field is
# an error), and the MPIJob with tools/validate_mpijob.py (its CRD's fields, then its pod templates).
# The linters come from PATH or from .lint/ (tools/install_lint.sh). Exit 0: all pass; 1: a finding;
# 77: a linter is missing (ctest then reports the test skipped).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
PATH="$root/.lint/bin:$PATH"
python=python3
[ -x "$root/.lint/bin/python" ] && python="$root/.lint/bin/python"
for tool in hadolint kubernetes-validate; do
    if ! command -v "$tool" >/dev/null; then
        echo "lint_deploy: skipped: $tool is not installed (tools/install_lint.sh puts it in .lint/)"
        exit 77
    fi
done
if ! "$python" -c "import jsonschema, kubernetes_validate, yaml" 2>/dev/null; then
    echo "lint_deploy: skipped: $python lacks jsonschema, kubernetes_validate or yaml (tools/install_lint.sh)"
    exit 77
fi
status=0
hadolint Containerfile && echo "lint_deploy: Containerfile passes hadolint" || status=1
kubernetes-validate --strict deploy/pvc.yaml deploy/job.yaml || status=1
"$python" tools/validate_mpijob.py deploy/mpijob.yaml || status=1
[ "$status" = 0 ] && echo "lint_deploy: all passed"
exit "$status"
