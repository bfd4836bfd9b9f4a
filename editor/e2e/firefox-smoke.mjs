// Firefox smoke test of the editor (run by tests/firefox/test_firefox_smoke.py): Firefox ESR driven
// over WebDriver BiDi by puppeteer-core, since Playwright's own Firefox build cannot be fetched here.
// Opens the page, checks the palette, runs the `hello` example and prints one JSON line.
import puppeteer from "puppeteer-core";

const [url, executablePath] = process.argv.slice(2);
const errors = [];

// Polls with page.evaluate instead of page.waitForFunction, whose in-page poller Firefox 140 ESR
// builds with Function(), which the editor's Content-Security-Policy blocks.
async function until(page, predicate, timeout = 120_000) {
  const deadline = Date.now() + timeout;
  while (!(await page.evaluate(predicate))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${predicate}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
// The window's own size, not page.setViewport: puppeteer's viewport emulation sends BiDi commands
// (emulation.setScreenOrientationOverride) that Firefox 140 ESR does not implement.
const browser = await puppeteer.launch({
  browser: "firefox", executablePath, headless: true, timeout: 120_000, protocolTimeout: 180_000,
  defaultViewport: null, args: ["--window-size=1600,1000"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(`page error: ${e}`));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true] .react-flow__node", { timeout: 120_000 });
  const palette = await page.$$eval("[data-palette]", (els) => els.map((e) => e.dataset.palette));
  await page.select("[data-examples]", "hello");
  await until(page, () => window.latentgraph.store.getState().name === "hello");
  await page.click("[data-run]");
  await until(page, () => {
    const s = window.latentgraph.store.getState();
    const run = s.runs[s.shownJob];
    return Boolean(run) && ["finished", "failed", "interrupted", "cancelled"].includes(run.status);
  });
  const status = await page.evaluate(() => { const s = window.latentgraph.store.getState(); return s.runs[s.shownJob].status; });
  const shown = await page.$eval('.react-flow__node[data-id="show"] .lg-text', (e) => e.textContent);
  console.log(JSON.stringify({ browser: await browser.version(), palette, status, shown, errors }));
} finally {
  await browser.close();
}
