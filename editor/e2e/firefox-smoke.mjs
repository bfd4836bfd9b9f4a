// Firefox smoke test of the editor (run by tests/firefox/test_firefox_smoke.py): Firefox ESR driven
// over WebDriver BiDi by puppeteer-core, since Playwright's own Firefox build cannot be fetched here.
// Opens the page, checks the palette, runs the `hello` example and prints one JSON line.
import puppeteer from "puppeteer-core";

const [url, executablePath] = process.argv.slice(2);
const errors = [];
const browser = await puppeteer.launch({ browser: "firefox", executablePath, headless: true, timeout: 120_000, protocolTimeout: 180_000 });
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(`page error: ${e}`));
  await page.setViewport({ width: 1600, height: 1000 });
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true] .react-flow__node", { timeout: 120_000 });
  const palette = await page.$$eval("[data-palette]", (els) => els.map((e) => e.dataset.palette));
  await page.select("[data-examples]", "hello");
  await page.waitForFunction(() => window.latentgraph.store.getState().name === "hello");
  await page.click("[data-run]");
  await page.waitForFunction(() => {
    const s = window.latentgraph.store.getState();
    const run = s.runs[s.shownJob];
    return run && ["finished", "failed", "interrupted", "cancelled"].includes(run.status);
  }, { timeout: 120_000 });
  const status = await page.evaluate(() => { const s = window.latentgraph.store.getState(); return s.runs[s.shownJob].status; });
  const shown = await page.$eval('.react-flow__node[data-id="show"] .lg-text', (e) => e.textContent);
  console.log(JSON.stringify({ browser: await browser.version(), palette, status, shown, errors }));
} finally {
  await browser.close();
}
