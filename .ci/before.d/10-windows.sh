# shellcheck shell=bash
# The Windows job (issue #9): cross-build scc-ports.exe once (release), build the Wine-only stand-in
# for bcryptprimitives.dll beside it, and warm a private Wine prefix, then export for tests/windows.rs:
#   SCC_PORTS_WINDOWS_EXE   the .exe, to run under Wine
#   SCC_PORTS_WINE          the wine64 loader
#   WINEPREFIX, WINEDEBUG   the warmed prefix, quiet
#   SCC_PORTS_WINDOWS_SKIP  set instead, with the reason, when the job cannot run
# Sourced by .ci/run: no `exit`, no `set -e` changes; failures return and say why in one line.

scc_windows_job() {
  local target=x86_64-pc-windows-gnu
  local wine=/usr/lib/wine/wine64
  local dir exe
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if ! rustup target add "$target" >/dev/null 2>&1; then
      export SCC_PORTS_WINDOWS_SKIP="the Rust standard library for $target cannot be fetched (rustup target add failed)"
      echo "windows: $SCC_PORTS_WINDOWS_SKIP; the Windows tests skip, the rest of CI runs"
      return 0
    fi
  fi
  if ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -x "$wine" ]; then
    export SCC_PORTS_WINDOWS_SKIP="mingw-w64 or wine64 is not installed"
    echo "windows: $SCC_PORTS_WINDOWS_SKIP"
    return 0
  fi
  if ! cargo build --release --target "$target" --bin scc-ports; then
    export SCC_PORTS_WINDOWS_SKIP="cargo build --release --target $target failed"
    echo "windows: $SCC_PORTS_WINDOWS_SKIP"
    return 0
  fi
  dir="target/$target/release"
  exe="$(pwd)/$dir/scc-ports.exe"
  # Test scaffolding for Wine only (Wine 8 lacks ProcessPrng); never part of a release.
  if ! x86_64-w64-mingw32-gcc -O2 -shared -o "$dir/bcryptprimitives.dll" \
      tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def -ladvapi32; then
    export SCC_PORTS_WINDOWS_SKIP="the Wine stand-in bcryptprimitives.dll did not build"
    echo "windows: $SCC_PORTS_WINDOWS_SKIP"
    return 0
  fi
  export WINEPREFIX="${SCC_PORTS_WINEPREFIX:-${TMPDIR:-/tmp}/scc-ports-wine}"
  export WINEDEBUG=-all
  # The first run creates the prefix (10-30 s); pay it here, once, not inside a test's timeout.
  local t0=$SECONDS
  if ! "$wine" "$exe" --version >/dev/null 2>&1; then
    export SCC_PORTS_WINDOWS_SKIP="scc-ports.exe does not start under Wine"
    echo "windows: $SCC_PORTS_WINDOWS_SKIP"
    return 0
  fi
  export SCC_PORTS_WINDOWS_EXE="$exe" SCC_PORTS_WINE="$wine"
  echo "windows: $exe ($(stat -c %s "$exe") bytes), Wine prefix $WINEPREFIX ready in $((SECONDS - t0)) s"
}

scc_windows_job
unset -f scc_windows_job
