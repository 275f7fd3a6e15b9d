# Shared by the external-judge scripts (sourced, not run): install Debian
# packages and a pinned PyPI tool, and run the quickstart in the background.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install PKG... : installs the packages (as root).
apt_install() {
  echo "judges: installing $* (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# pip_tool VENV PACKAGE VERSION : a venv in VENV holding PACKAGE==VERSION.
pip_tool() {
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  if [ ! -x "$1/bin/pip" ] || ! "$1/bin/pip" show "$2" 2>/dev/null | grep -qx "Version: $3"; then
    echo "judges: installing $2 $3 into $1"
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/pip" install -q --disable-pip-version-check "$2==$3"
  fi
}

# start_quickstart : builds and starts `portcullis quickstart` on a free
# port in a temporary directory ($DATA), stopped and removed on exit.
start_quickstart() {
  cargo build -q -p portcullis --locked
  DATA=$(mktemp -d)
  QS_PID=
  trap 'if [ -n "$QS_PID" ]; then kill "$QS_PID" 2>/dev/null || true; wait "$QS_PID" 2>/dev/null || true; fi; rm -rf "$DATA"' EXIT
  target/debug/portcullis quickstart --port 0 --data-dir "$DATA/qs" >"$DATA/quickstart.log" 2>&1 &
  QS_PID=$!
  for _ in $(seq 1 200); do
    [ -s "$DATA/qs/quickstart.json" ] && return 0
    if ! kill -0 "$QS_PID" 2>/dev/null; then cat "$DATA/quickstart.log"; exit 1; fi
    sleep 0.1
  done
  echo "quickstart did not start"; exit 1
}

# fact NAME : a field of the running quickstart's quickstart.json.
fact() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$DATA/qs/quickstart.json" "$1"; }
