// Signing in and opening tabs, per library.
//
// latchkey goes through the end-to-end helpers (tests/e2e/support/session.mjs: loginTab,
// openTab), exactly as tests/e2e/storm.test.mjs does, so the bench's latchkey storm is the
// tested storm. The baselines go through their own harness page: the library's login
// redirect, the IdP's automatic login/consent, the library's own callback handling.
import { loginTab, openTab } from "../../tests/e2e/support/session.mjs";

import { idpForLatchkeyPage } from "./env.mjs";

const READY_TIMEOUT = 15_000;

async function openPage(context, origin) {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.bench?.ready === true, null, { timeout: READY_TIMEOUT });
  return page;
}

async function baselineLogin(context, origin, opts) {
  const page = await openPage(context, origin);
  const landed = page.waitForURL((url) => url.origin === origin && (url.searchParams.has("code") || url.searchParams.has("error")), {
    timeout: READY_TIMEOUT,
  });
  // Not awaited in the page: it navigates away while login() runs.
  await page.evaluate(() => {
    window.bench.login().catch((e) => console.error(`login: ${e?.message ?? e}`));
  });
  await landed;
  await page.waitForFunction(() => window.bench?.ready === true, null, { timeout: READY_TIMEOUT });
  const url = new URL(page.url());
  if (url.searchParams.has("error")) throw new Error(`login refused: ${url.searchParams.get("error")} ${url.searchParams.get("error_description") ?? ""}`);
  await page.evaluate(() => window.bench.completeLogin());
  await page.evaluate((opts) => window.bench.init(opts), opts);
  return page;
}

async function baselineTab(context, origin, opts) {
  const page = await openPage(context, origin);
  await page.evaluate((opts) => window.bench.init(opts), opts);
  return page;
}

// latchkey options for the e2e helpers: `isTokenExpired: "bluesky"` names installClient's
// page-side predicate (functions cannot cross evaluate()).
// The API is on the IdP's origin; the fast-path probe calls the page's own.
// `dpop`: the session is bound to a DPoP key (RFC 9449) through the IdP's DPoP client
// `spa-dpop`, which requires PAR — the options tests/e2e/dpop-storm.test.mjs uses.
function latchkeyExtra(idp, { mode, storage, refreshLeewaySeconds, dpop }) {
  const extra = { allowedOrigins: [new URL(idp.whoamiUrl).origin, idp.spaOrigin] };
  if (storage) extra.storage = storage;
  if (refreshLeewaySeconds !== undefined) extra.refreshLeewaySeconds = refreshLeewaySeconds;
  if (mode === "bluesky") extra.isTokenExpired = "bluesky";
  if (dpop) Object.assign(extra, { clientId: idp.dpopClientId, dpop: true, par: true });
  return extra;
}

/**
 * Signs in through the real redirect in a new tab of `context` and creates the tab's client.
 * `opts`: { mode: "rfc6750" | "bluesky", storage?, refreshLeewaySeconds?, dpop? (latchkey only) }.
 */
export async function signIn(env, lib, context, opts) {
  if (lib === "latchkey") {
    const idp = idpForLatchkeyPage(env);
    return loginTab(context, idp, latchkeyExtra(idp, opts));
  }
  return baselineLogin(context, env.pages[lib].origin, opts);
}

/** Opens one more tab of the signed-in origin and creates its client. */
export async function openClientTab(env, lib, context, opts) {
  if (lib === "latchkey") {
    const idp = idpForLatchkeyPage(env);
    return openTab(context, idp, latchkeyExtra(idp, opts));
  }
  return baselineTab(context, env.pages[lib].origin, opts);
}
