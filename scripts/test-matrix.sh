#!/usr/bin/env bash
# `make test-matrix`: the unit, emulator and integration suites on the older supported Airflow releases
# (make test covers the newest). One venv per release under .matrix/ (git-ignored), reused while
# pyproject.toml is unchanged. Usage: scripts/test-matrix.sh [VERSION ...]
#
# The browser test (Chromium, API server) and the Celery test (minutes, needs its own scheduler) run
# on the newest release only: they exercise Airflow's own UI and executor, not code that differs here.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VERSIONS=("$@")
if [ ${#VERSIONS[@]} -eq 0 ]; then
    read -r -a VERSIONS <<< "${AIRFLOW_MATRIX:-3.1.0 3.2.2}"
fi
PIP_QUIET=(-q --disable-pip-version-check)

overall=0
for version in "${VERSIONS[@]}"; do
    venv=".matrix/airflow-$version"
    stamp="$venv/.installed-stamp"
    started=$(date +%s)
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== test-matrix: installing apache-airflow==$version into $venv"
        test -x "$venv/bin/python" || "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install "${PIP_QUIET[@]}" --upgrade pip 2>&1 | grep -v "is ignored" || true
        # Airflow pinned, the package and its dev extra resolved around it (pip refuses a conflict).
        "$venv/bin/python" -m pip install "${PIP_QUIET[@]}" "apache-airflow==$version" -e ".[dev]" 2>&1 \
            | grep -v "is ignored" || true
        "$venv/bin/python" -c "import airflow, sys; v = airflow.__version__; sys.exit(v != '$version' and f'installed {v}')"
        touch "$stamp"
    fi
    installed=$(date +%s)
    echo "== test-matrix: Airflow $version (install $((installed - started)) s)"
    if "$venv/bin/python" -m pytest tests/unit tests/emulator tests/integration -m "not celery" -q \
            -p no:cacheprovider; then
        echo "== test-matrix: Airflow $version passed in $(( $(date +%s) - installed )) s"
    else
        echo "== test-matrix: Airflow $version FAILED after $(( $(date +%s) - installed )) s"
        overall=1
    fi
done
exit $overall
