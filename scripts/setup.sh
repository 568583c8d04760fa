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
# Re-running on a ready machine is quick: pip is only called when a requirements file or the lock changed. One stamp
# per mode (the hash of the files that mode installs): plugin (make demo, make zip) and training (make test, make
# bench), so alternating them does not reinstall; a training install holds the plugin's too, so it stamps both.
case "${1:-plugin}" in
  plugin|training) mode=${1:-plugin} ;;
  *) echo "usage: scripts/setup.sh [training]" >&2; exit 2 ;;
esac
hash_of() { cat "$@" | sha1sum | cut -c1-40; }
plugin_files=(constraints.txt requirements.txt requirements-dev.txt)
training_files=("${plugin_files[@]}" requirements-training.txt requirements-dask.txt)
plugin_stamp=.venv/.nlf-setup-plugin
training_stamp=.venv/.nlf-setup-training
rm -f .venv/.nlf-setup-stamp  # the single stamp of earlier versions (it held either mode's hash)
plugin_ok() { [ "$(cat "$plugin_stamp" 2>/dev/null)" = "$(hash_of "${plugin_files[@]}")" ]; }
training_ok() { [ "$(cat "$training_stamp" 2>/dev/null)" = "$(hash_of "${training_files[@]}")" ]; }
if [ "$mode" = training ] && ! training_ok; then
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
  # training extras and the optional Dask scale-out (its tests run in make test)
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements-training.txt -r requirements-dask.txt
  hash_of "${training_files[@]}" > "$training_stamp"
  hash_of "${plugin_files[@]}" > "$plugin_stamp"
elif [ "$mode" = plugin ] && ! plugin_ok && ! training_ok; then
  .venv/bin/python -m pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
  hash_of "${plugin_files[@]}" > "$plugin_stamp"
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
