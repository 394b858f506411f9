# Sourced by scripts/serve and scripts/test: creates .venv with Python 3.11+
# and installs the project (editable) with the extras given in $1, re-installing
# only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "ocpi-gateway needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
venv="$root/.venv"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
stamp="$venv/.installed${extras:+-$extras}"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root${extras:+[$extras]}"
    echo "$want" > "$stamp"
fi
