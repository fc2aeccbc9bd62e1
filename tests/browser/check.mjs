// Opens an HTML report in headless Chromium and checks what a reader sees: no console errors, no
// network request besides the page itself, the failures and the SVG picture present; saves a
// screenshot. Usage: node check.mjs REPORT.html SCREENSHOT.png [EXPECTED_FAILURES]
// Prints one JSON line with what it found; exits 1 when a check fails.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [page_path, shot, expected] = process.argv.slice(2);
if (!page_path || !shot) {
  console.error("usage: node check.mjs REPORT.html SCREENSHOT.png [EXPECTED_FAILURES]");
  process.exit(2);
}
const url = pathToFileURL(resolve(page_path)).href;
const profile = mkdtempSync(join(tmpdir(), "scc-chromium-"));
// A fresh profile per run (--user-data-dir, given as playwright's persistent context).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
  // JavaScript off: the report must be complete without it.
  javaScriptEnabled: false,
  viewport: { width: 1100, height: 900 },
});
const problems = [];
const found = {};
try {
  const page = await context.newPage();
  const consoleErrors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("request", (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  await page.goto(url, { waitUntil: "load" });
  found.title = await page.title();
  found.failures = await page.locator("#failures ~ .failure").count();
  found.svg = await page.locator(".picture svg").count();
  found.svg_edges = await page.locator(".picture svg path.edge").count();
  found.svg_boxes = await page.locator(".picture svg g.box").count();
  found.verdict = (await page.locator("#verdict").innerText()).trim();
  found.matrix_rows = await page.locator("#matrix + p + table tr").count();
  // Bidi controls and line separators in what a reader sees (they reorder or split lines).
  const text = await page.locator("body").innerText();
  found.bidi = (text.match(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g) || []).length;
  found.rejected_rows = Math.max(0, (await page.locator("#rejected + p + table tr").count()) - 1);
  const box = await page.locator(".picture svg").boundingBox();
  found.svg_size = box ? [Math.round(box.width), Math.round(box.height)] : null;
  await page.screenshot({ path: shot, fullPage: true });
  // Print layout renders too (the print CSS), as PDF.
  const pdf = await page.pdf({ format: "A4" });
  found.pdf_bytes = pdf.length;
  found.console_errors = consoleErrors;
  found.requests = requests;
  if (consoleErrors.length) problems.push(`console errors: ${consoleErrors.join(" | ")}`);
  if (requests.length) problems.push(`network requests: ${requests.join(" ")}`);
  if (found.bidi) problems.push(`${found.bidi} bidi or line-separator characters in the page's text`);
  if (found.svg !== 1) problems.push(`expected one SVG picture, found ${found.svg}`);
  if (!box || box.width < 100 || box.height < 50) problems.push("the SVG picture is not visible");
  if (expected !== undefined && found.failures !== Number(expected))
    problems.push(`expected ${expected} failures, found ${found.failures}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ ok: problems.length === 0, problems, ...found }));
process.exit(problems.length ? 1 : 0);
