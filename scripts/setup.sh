#!/usr/bin/env bash
# Installs everything Nightlight Fusion needs on Debian 12, idempotently:
# Debian's QGIS and rasterio, then a virtualenv at .venv that sees them (--system-site-packages).
#   scripts/setup.sh            plugin + test tools
#   scripts/setup.sh training   plus the training extras (torch CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qgis python3-qgis qgis-providers python3-rasterio python3-scipy python3-matplotlib python3-venv xvfb zip)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (with Debian's site packages: QGIS, rasterio, numpy 1.24)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

# constraints.txt is the lock: one exact version of every package pip installs here (make pins refreshes it,
# see scripts/refresh_pins.sh); requirements*.txt say what is wanted, the lock which release of it.
# Re-running on a ready machine is quick: pip is only called when a requirements file or the lock changed.
stamp=.venv/.nlf-setup-stamp
want=$(cat constraints.txt requirements-dev.txt requirements.txt ${1:+requirements-training.txt requirements-dask.txt} | sha1sum | cut -c1-40)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
  if [ "${1:-}" = "training" ]; then
    # training extras and the optional Dask scale-out (its tests run in make test)
    .venv/bin/python -m pip install -q -c constraints.txt -r requirements-training.txt -r requirements-dask.txt
  fi
  echo "$want" > "$stamp"
fi
# Anything in .venv at another version than the lock (a hand-made pip install) is said, not silently kept.
.venv/bin/python -m pip freeze --local --all 2>/dev/null | .venv/bin/python -c '
import sys
lock = {}
for line in open("constraints.txt"):
    name, sep, version = line.split("#")[0].strip().partition("==")
    if sep:
        lock[name.lower().replace("_", "-")] = version
for line in sys.stdin:
    name, sep, version = line.strip().partition("==")
    key = name.lower().replace("_", "-")
    if sep and key in lock and lock[key] != version:
        print(f"setup: warning: .venv has {name} {version}, constraints.txt locks {lock[key]}")
'
.venv/bin/python - <<'PY'
import numpy, rasterio
from qgis.core import Qgis
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__} in .venv: Debian's rasterio/QGIS need numpy<2"
print(f"setup: ready (QGIS {Qgis.QGIS_VERSION}, rasterio {rasterio.__version__}, numpy {numpy.__version__})")
PY
