// Drives the page in headless Chromium against a running Loom: `node drive.mjs <loom-url>`.
// Serves dist/ on its own port (another origin than Loom, so every call is a CORS call), runs the
// steps a person would, asserts on the DOM, and prints one JSON line: the thread ids and what it saw.
import http from "node:http";
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const loomUrl = process.argv[2];
const TIMEOUT_MS = 30_000; // an upper bound on each wait, so a broken server fails instead of hanging
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const dist = new URL("./dist/", import.meta.url);
const files = { "/": ["index.html", "text/html"], "/app.js": ["app.js", "text/javascript"] };
const site = http.createServer(async (request, response) => {
  const found = files[new URL(request.url, "http://page").pathname];
  if (!found) return response.writeHead(404).end();
  response.writeHead(200, { "content-type": found[1] }).end(await readFile(new URL(found[0], dist)));
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${site.address().port}/?api=${encodeURIComponent(loomUrl)}&assistant=support`;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ARGS });
const page = await browser.newPage();
page.setDefaultTimeout(TIMEOUT_MS);
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error}`));
page.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`));
await page.addInitScript(() => {
  // Keep a copy of each run stream's SSE text as the page receives it (DevTools cannot read a streamed body).
  const fetchOriginal = window.fetch;
  window.runStreams = [];
  window.fetch = async (...args) => {
    const response = await fetchOriginal(...args);
    if (!String(args[0]?.url ?? args[0]).endsWith("/runs/stream") || !response.body) return response;
    const [mine, theirs] = response.body.tee();
    const record = { text: "" };
    window.runStreams.push(record);
    mine.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write: (part) => { record.text += part; } }));
    return new Response(theirs, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
});
const seen = { steps: [] };

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
  } catch (error) {
    throw new Error(`step "${name}" failed: ${error.message}\nproblems: ${problems.join("\n")}\n` +
      `page: ${await page.locator("body").innerText().catch(() => "?")}`);
  }
  seen.steps.push({ name, ms: Date.now() - started });
}

const idle = () => page.locator('#chat[data-loading="false"]').waitFor();
const threadId = () => page.locator("#chat").getAttribute("data-thread-id");
const messages = () => page.locator("#messages > li").evaluateAll((items) => items.map((li) => [li.className, li.textContent]));
const reply = (text) => page.locator("#messages > li.ai", { hasText: text }).waitFor();

async function send(text) {
  await page.locator("#message").fill(text);
  await page.locator("#send").click();
}

async function newThread() {
  await page.locator("#new-thread").click();
  await page.locator('#chat[data-thread-id=""]').waitFor();
}

try {
  await step("open the page", async () => {
    await page.goto(pageUrl);
    await page.locator('#threads[data-loaded="true"]').waitFor({ state: "attached" });
  });
  await step("send a message and see the streamed reply", async () => {
    await send("Hello there, quick question");
    await reply("Hello! Happy to help");
    await idle();
    seen.chat = await threadId();
    const body = await page.evaluate(() => window.runStreams[0].text);
    seen.first_stream_message_events = body.split("\n").filter((line) => line.startsWith("event: messages")).length;
  });
  await step("a follow-up in the same thread", async () => {
    await send("And what are your opening hours?");
    await reply("We answer around the clock");
    await idle();
    if ((await threadId()) !== seen.chat) throw new Error("the follow-up went to another thread");
    seen.chat_messages = await messages();
  });
  await step("the thread list shows the thread", async () => {
    await page.locator(`#threads li[data-thread-id="${seen.chat}"]`).waitFor();
  });
  await step("an approval interrupt, approved", async () => {
    await newThread();
    await send("Please refund invoice INV-1002, it was a double charge");
    await page.locator('#approval .action[data-name="issue_refund"]').waitFor();
    seen.approved = await threadId();
    await page.locator("#approve").click();
    await reply("Refunded INV-1002");
    await idle();
    if (await page.locator("#approval").count()) throw new Error("the approval is still shown");
  });
  await step("an approval interrupt, rejected", async () => {
    await newThread();
    await send("Please refund invoice INV-1001, I changed my mind");
    await page.locator('#approval .action[data-name="issue_refund"]').waitFor();
    seen.rejected = await threadId();
    await page.locator("#reason").fill("outside the refund window");
    await page.locator("#reject").click();
    await reply("no refund was made");
    await idle();
  });
  await step("reload the page: the open thread comes back with its history", async () => {
    await page.reload();
    await page.locator(`#chat[data-thread-id="${seen.rejected}"]`).waitFor();
    await reply("no refund was made");
    await page.locator("#messages > li.human", { hasText: "I changed my mind" }).waitFor();
    for (const id of [seen.chat, seen.approved, seen.rejected]) {
      await page.locator(`#threads li[data-thread-id="${id}"]`).waitFor();
    }
  });
  await step("reopen the first thread from the list", async () => {
    await page.locator(`#threads li[data-thread-id="${seen.chat}"] button`).click();
    await page.locator(`#chat[data-thread-id="${seen.chat}"]`).waitFor();
    await reply("We answer around the clock");
    await idle();
    seen.reopened_messages = await messages();
  });
  seen.problems = problems;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
  site.close();
}
