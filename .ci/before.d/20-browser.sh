# h10report: the HTML report's browser test (tests/report.rs) drives Debian's chromium with
# playwright-core from tests/browser/node_modules (package-lock.json pins it). Sourced by .ci/run
# under `set -e`: no `exit`, and a failed install only leaves the test to fail with its reason.
scc_browser_deps() {
  [ -d tests/browser/node_modules/playwright-core ] && return 0
  if ! command -v npm >/dev/null; then
    echo "before.d/20-browser: npm is missing; the browser test will fail" >&2
    return 0
  fi
  (cd tests/browser && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }) ||
    echo "before.d/20-browser: npm could not install tests/browser" >&2
}
scc_browser_deps
