// The servers a test file shares: the test authorization server serving the
// staged e2e app (loopback only) and one headless Chromium. A file starts
// them in `before` and stops them in `after`:
//
//   before(async () => ({ idp, browser } = await startApp()));
//   after(() => stopApp({ idp, browser }));
import { startIdp } from "../../idp/server.mjs";
import { launchBrowser } from "./browser.mjs";
import { requireStagedApp } from "./project.mjs";

export async function startApp(idpOptions = {}) {
  const idp = await startIdp({ serveSpa: { root: requireStagedApp() }, ...idpOptions });
  try {
    return { idp, browser: await launchBrowser() };
  } catch (error) {
    await idp.close();
    throw error;
  }
}

export async function stopApp({ idp, browser }) {
  await browser?.close();
  await idp?.close();
}
