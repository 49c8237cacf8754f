// Launches Debian's headless Chromium through playwright-core (Playwright's
// own browser downloads are not available here).
import { chromium } from "playwright-core";

// Without these, Chromium keeps trying to reach Google's services, which
// this closed network refuses (TOOLCHAIN.md pitfall 7). --no-sandbox: CI runs as root.
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

// `popupBlocking`: keep Chromium's popup blocker on (Playwright turns it
// off by default), for tests of a blocked popup.
export async function launchBrowser({ popupBlocking = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    ignoreDefaultArgs: popupBlocking ? ["--disable-popup-blocking"] : [],
  });
}

// Records uncaught page errors and console errors so a test can assert that
// a page ran cleanly.
export function collectPageErrors(page) {
  const errors = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  return errors;
}
