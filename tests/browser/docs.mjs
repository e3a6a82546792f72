// Opens a running Loom's /docs and /redoc in headless Chromium with every request that leaves 127.0.0.1
// blocked and recorded: `node docs.mjs <loom-url>`. Prints one JSON line: what reached the network for another
// host (nothing should), what the pages tried and their Content-Security-Policy refused, the operations Swagger UI
// and ReDoc drew, and any other script or console error.
import { chromium } from "playwright-core";

const loomUrl = process.argv[2];
const TIMEOUT_MS = 30_000; // an upper bound on each wait, so a page that never draws fails instead of hanging
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const NETWORK = new Set(["http:", "https:", "ws:", "wss:"]);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ARGS });
const context = await browser.newContext();
const seen = { outside: [], attempted: [], refused: [], problems: [] };
const leaves = (href) => {
  const url = new URL(href);
  return NETWORK.has(url.protocol) && url.hostname !== "127.0.0.1";
};
// what reaches the network layer (a request the page's Content-Security-Policy refused never does), aborted
await context.route("**/*", (route) => {
  if (!leaves(route.request().url())) return route.continue();
  seen.outside.push(route.request().url());
  return route.abort("blockedbyclient");
});
context.on("request", (request) => leaves(request.url()) && seen.attempted.push(request.url()));
context.on("websocket", (socket) => leaves(socket.url()) && seen.outside.push(socket.url()));

const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT_MS);
page.on("pageerror", (error) => seen.problems.push(`page error: ${error}`));
page.on("console", (message) => {
  if (message.type() !== "error") return;
  const refused = message.text().match(/^Loading the \w+ '([^']+)' violates the following Content Security Policy/);
  if (refused) seen.refused.push(refused[1]);
  else seen.problems.push(`console: ${message.text()}`);
});
try {
  await page.goto(`${loomUrl}/docs`);
  await page.locator(".opblock").first().waitFor();
  seen.swagger = {
    title: await page.title(),
    paths: await page.locator(".opblock-summary-path").evaluateAll((spans) => spans.map((s) => s.dataset.path)),
  };
  await page.goto(`${loomUrl}/redoc`);
  await page.locator(".api-content h2").first().waitFor();
  seen.redoc = {
    title: await page.title(),
    operations: await page.locator(".api-content h2").evaluateAll((headings) => headings.map((h) => h.textContent)),
  };
} catch (error) {
  const body = await page.locator("body").innerText().catch(() => "?");
  throw new Error(`${error.message}\nseen: ${JSON.stringify(seen)}\npage: ${body.slice(0, 2000)}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
