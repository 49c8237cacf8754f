// The bench's world: the test IdP, one page origin per library, the Auth0 façade and headless
// Chromium, all on 127.0.0.1; `close()` stops all of it (also after a failure half-way).
import { startIdp } from "../../tests/idp/server.mjs";
import { launchBrowser } from "../../tests/e2e/support/browser.mjs";

import { LIBS } from "./build.mjs";
import { startAuth0Adapter, startPageServer } from "./servers.mjs";

export async function startEnv({ harness, pkgDir }) {
  const stoppers = [];
  const close = async () => {
    for (const stop of stoppers.reverse()) {
      try {
        await stop();
      } catch (err) {
        process.stderr.write(`bench: cleanup: ${err?.message ?? err}\n`);
      }
    }
    stoppers.length = 0;
  };
  try {
    const pages = {};
    for (const lib of LIBS) {
      pages[lib] = await startPageServer({ lib, harnessFile: harness[lib], pkgDir: lib === "latchkey" ? pkgDir : undefined });
      stoppers.push(pages[lib].close);
    }
    // Every page origin is a registered SPA origin (redirect URI `<origin>/`, CORS).
    const idp = await startIdp({ spaOrigins: LIBS.map((lib) => pages[lib].origin) });
    stoppers.push(() => idp.close());
    const adapter = await startAuth0Adapter({ issuer: idp.issuer });
    stoppers.push(adapter.close);
    for (const lib of LIBS) {
      pages[lib].setConfig({
        issuer: idp.issuer,
        clientId: idp.clientId,
        whoami: idp.whoamiUrl,
        auth0Domain: adapter.origin,
      });
    }
    const browser = await launchBrowser();
    stoppers.push(() => browser.close());
    return { idp, pages, adapter, browser, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The `idp` handle the e2e helpers (tests/e2e/support) expect, pointed at latchkey's bench
 * page instead of the e2e app: they only read issuer, clientId (dpopClientId for a DPoP
 * session), spaOrigin, refreshSessionUrl.
 */
export function idpForLatchkeyPage(env) {
  return Object.assign(Object.create(null), {
    issuer: env.idp.issuer,
    clientId: env.idp.clientId,
    dpopClientId: env.idp.dpopClientId,
    spaOrigin: env.pages.latchkey.origin,
    refreshSessionUrl: env.idp.refreshSessionUrl,
    whoamiUrl: env.idp.whoamiUrl,
  });
}
