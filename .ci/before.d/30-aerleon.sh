# shellcheck shell=bash
# The Aerleon job (issues #17, #18): Aerleon 1.18.0 (PyPI `aerleon`, command `aclgen`) in a virtual
# environment of its own, then exported for the tests that render our policies through it:
#   SCC_PORTS_ACLGEN   the aclgen program
# Sourced by .ci/run under `set -e`: no `exit`; a failed install leaves the tests to fail with
# their reason (CI requires them).
scc_aerleon_job() {
  local venv="${SCC_PORTS_AERLEON_VENV:-/opt/scc-ports-aerleon}"
  local t0=$SECONDS
  if [ ! -x "$venv/bin/aclgen" ] || ! "$venv/bin/pip" show aerleon 2>/dev/null | grep -qx 'Version: 1.18.0'; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1 && ! /usr/bin/python3 -m venv "$venv"; then
      echo "aerleon: python3 -m venv failed (install python3-venv); the Aerleon tests will fail" >&2
      return 0
    fi
    if ! "$venv/bin/pip" install -q --disable-pip-version-check aerleon==1.18.0; then
      echo "aerleon: pip install aerleon==1.18.0 failed; the Aerleon tests will fail" >&2
      return 0
    fi
  fi
  export SCC_PORTS_ACLGEN="$venv/bin/aclgen"
  echo "aerleon: $SCC_PORTS_ACLGEN ($("$venv/bin/pip" show aerleon | sed -n 's/^Version: //p')) ready in $((SECONDS - t0)) s"
}
scc_aerleon_job
unset -f scc_aerleon_job
