#!/usr/bin/env bash
# Regenerate tests/parity/golden/** and tests/parity/oracle_timings.json from
# REAL Glance 33.0.0 (see tests/parity/README.md).
#
# Environment:
#   GLANCE_ORACLE_VENV    virtualenv to use/create (default /tmp/glance-oracle-venv)
#   GLANCE_ORACLE_PYTHON  interpreter for a new virtualenv (default python3.11)
#   GOLDEN_MYSQL_URL      default mysql+pymysql://root@127.0.0.1:3306
#   GOLDEN_PG_URL         default postgresql+psycopg2://postgres@127.0.0.1:5432
# Extra arguments go to make_golden.py (e.g. --engines sqlite --timings '').
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$(bash "$HERE/oracle-venv" | tail -n 1)"

REGISTRY="$(mktemp -t glance-golden-dbs.XXXXXX)"
cleanup() {
    # drop whatever databases a failed or interrupted run left behind
    "$VENV/bin/python" "$HERE/make_golden.py" --cleanup --registry "$REGISTRY" || true
    rm -f "$REGISTRY"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
"$VENV/bin/python" "$HERE/make_golden.py" --registry "$REGISTRY" "$@"
echo "make_golden.sh: $(( $(date +%s) - start )) s"
