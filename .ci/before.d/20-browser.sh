# h10report: the HTML report's browser test (tests/report.rs) drives Debian's chromium with
# playwright-core from tests/browser/node_modules. Sourced by .ci/run: no `exit`.
scc_browser_deps() {
  [ -d tests/browser/node_modules/playwright-core ] && return 0
  command -v npm >/dev/null || { echo "before.d/20-browser: npm missing"; return 0; }
  (cd tests/browser && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
}
scc_browser_deps
