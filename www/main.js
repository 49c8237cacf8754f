// The demo page: signs in against the local test authorization server with the release
// package that scripts/stage-www put next to it, calls the test API, and shows what latchkey
// does across tabs.
//
// Nothing to configure: the server that serves this page also answers ./demo-config.json
// with { issuer, clientId, whoami } (see tests/idp/static.mjs), or, for `scripts/demo
// --atproto` (tests/atproto/demo.mjs), with { profile: "atproto", clientId, scope,
// handleResolver, plcDirectoryUrl, pdsUrl, account: { handle, password } }: "Sign in with
// Bluesky" against the local PDS, and the API is the account's PDS.
import { AuthClient, isLatchkeyError, version } from "./latchkey/index.js";

const $ = (id) => document.getElementById(id);
const ui = {
  error: $("error"),
  session: $("session"),
  expiry: $("expiry"),
  signIn: $("sign-in"),
  signInPopup: $("sign-in-popup"),
  callApi: $("call-api"),
  signOut: $("sign-out"),
  apiStatus: $("api-status"),
  apiBody: $("api-body"),
  log: $("log"),
  logEmpty: $("log-empty"),
  status: $("status"),
  version: $("version"),
  storage: $("storage"),
  issuer: $("issuer"),
  issuerLabel: $("issuer-label"),
  clientId: $("client-id"),
  plc: $("plc"),
  tagline: $("tagline"),
  handleForm: $("handle-form"),
  handle: $("handle"),
  demoHandle: $("demo-handle"),
  demoPassword: $("demo-password"),
  userDid: $("user-did"),
  userHandle: $("user-handle"),
  userPds: $("user-pds"),
};

const SOURCES = { login: "login in this tab", refresh: "refreshed in this tab", sync: "from another tab" };
const LOG_LIMIT = 200;

// --- small helpers ---------------------------------------------------------------------------

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

function describeError(error) {
  if (isLatchkeyError(error)) {
    const server = [error.error, error.error_description].filter(Boolean).join(": ");
    return { code: error.code, text: server ? `${error.message} (server said ${server})` : error.message };
  }
  return { code: error?.name ?? "Error", text: error?.message ?? String(error) };
}

function showError(what, error) {
  const { code, text } = describeError(error);
  ui.error.replaceChildren(`${what} failed: `, Object.assign(document.createElement("code"), { textContent: code }), ` — ${text}`);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.replaceChildren();
}

// --- what the page knows about the session ---------------------------------------------------

// The access token's expiry as last learned from a `tokens` event. Kept in localStorage (only
// the time, never a token) so a tab opened later can show it before the next refresh.
let expiresAt = null;
let expiryKey = null;

function rememberExpiry(ms) {
  expiresAt = ms ?? null;
  try {
    if (expiresAt === null) localStorage.removeItem(expiryKey);
    else localStorage.setItem(expiryKey, String(expiresAt));
  } catch {
    // storage unavailable: the countdown just starts as "unknown" in other tabs
  }
  renderExpiry();
}

function recallExpiry() {
  try {
    const stored = Number(localStorage.getItem(expiryKey));
    expiresAt = stored > 0 ? stored : null;
  } catch {
    expiresAt = null;
  }
}

function renderExpiry() {
  if (document.body.dataset.session !== "signed-in" || expiresAt === null) {
    ui.expiry.textContent = document.body.dataset.session === "signed-in" ? "expiry unknown" : "none";
    ui.expiry.removeAttribute("datetime");
    return;
  }
  ui.expiry.dateTime = new Date(expiresAt).toISOString();
  const seconds = Math.round((expiresAt - Date.now()) / 1000);
  ui.expiry.textContent =
    seconds > 0
      ? `expires in ${seconds} s (at ${clock(expiresAt)})`
      : `expired ${-seconds} s ago (at ${clock(expiresAt)}); the next call refreshes it`;
}

// No popup sign-in with Bluesky: the PDS's pages send Cross-Origin-Opener-Policy: same-origin
// (clearing the popup's window.name) and a PAR authorization URL carries no `state` to find
// the popup by, so its callback cannot be handed back to this tab.
let popupOffered = true;

function setSession(state) {
  document.body.dataset.session = state;
  ui.session.textContent = { "signed-in": "Signed in", "signed-out": "Signed out", expired: "Session expired — sign in again" }[state];
  ui.signIn.hidden = state === "signed-in";
  ui.signInPopup.hidden = state === "signed-in" || !popupOffered;
  ui.callApi.hidden = state !== "signed-in";
  ui.signOut.hidden = state !== "signed-in";
  renderExpiry();
}

function logEvent(name, text, attributes = {}) {
  const item = document.createElement("li");
  item.dataset.event = name;
  Object.assign(item.dataset, attributes);
  const time = document.createElement("time");
  time.dateTime = new Date().toISOString();
  time.textContent = clock(Date.now());
  const label = Object.assign(document.createElement("strong"), { textContent: name });
  item.append(time, " ", label, ` ${text}`);
  ui.log.append(item);
  while (ui.log.children.length > LOG_LIMIT) ui.log.firstElementChild.remove();
  ui.logEmpty.hidden = true;
  ui.log.scrollTop = ui.log.scrollHeight;
}

// --- the client ------------------------------------------------------------------------------

async function loadConfig() {
  const response = await fetch("./demo-config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`./demo-config.json answered ${response.status}; start the page with scripts/demo`);
  const config = await response.json();
  if (config.profile === "atproto") {
    if (typeof config.clientId !== "string" || typeof config.handleResolver !== "string" || typeof config.pdsUrl !== "string") {
      throw new Error("./demo-config.json lacks clientId, handleResolver or pdsUrl");
    }
    return config;
  }
  if (typeof config.issuer !== "string" || typeof config.clientId !== "string" || typeof config.whoami !== "string") {
    throw new Error("./demo-config.json lacks issuer, clientId or whoami");
  }
  return config;
}

// --- Sign in with Bluesky (profile: "atproto") -------------------------------------------------

const isAtproto = (config) => config.profile === "atproto";

function showAtprotoSetup(config) {
  document.body.dataset.profile = "atproto";
  for (const element of document.querySelectorAll(".atproto-only")) element.hidden = false;
  ui.tagline.textContent = "Sign in with Bluesky: AT Protocol OAuth (PAR, DPoP) against a local PDS.";
  ui.signIn.textContent = "Sign in with Bluesky";
  popupOffered = false;
  ui.callApi.textContent = "Call the PDS (getSession)";
  ui.issuerLabel.textContent = "PDS";
  ui.issuer.textContent = config.pdsUrl;
  ui.plc.textContent = config.plcDirectoryUrl ?? "https://plc.directory";
  ui.handle.value = config.account?.handle ?? "";
  ui.demoHandle.textContent = config.account?.handle ?? "—";
  ui.demoPassword.textContent = config.account?.password ?? "—";
}

// The signed-in account (getUser: DID, handle, PDS), or dashes.
async function renderAccount(auth) {
  let user = null;
  try {
    if (await auth.isAuthenticated()) user = await auth.getUser();
  } catch {
    // signed out meanwhile: dashes
  }
  ui.userDid.textContent = user?.sub ?? "—";
  ui.userHandle.textContent = user?.handle ?? "—";
  ui.userPds.textContent = user?.pds ?? "—";
  return user;
}

// What "Call the API" calls: the test API, or the account's PDS.
async function apiUrl(auth, config) {
  if (!isAtproto(config)) return config.whoami;
  const user = await auth.getUser();
  return new URL("/xrpc/com.atproto.server.getSession", user.pds).href;
}

function loginOptions(config) {
  if (!isAtproto(config)) return undefined;
  return { handle: ui.handle.value.trim() };
}

function subscribe(auth) {
  auth.on("tokens", ({ expiresAt: at, source }) => {
    const expiry = at === null ? "expiry unknown" : `expires ${clock(at)}`;
    logEvent("tokens", `— ${SOURCES[source] ?? source}, ${expiry}`, { source });
    setSession("signed-in");
    rememberExpiry(at);
  });
  auth.on("sessionExpired", () => {
    logEvent("sessionExpired", "— the refresh token was refused or expired; signed out in every tab");
    rememberExpiry(null);
    setSession("expired");
  });
  auth.on("signedOut", () => {
    logEvent("signedOut", "— signed out in this tab or another");
    rememberExpiry(null);
    setSession("signed-out");
  });
  auth.on("storage", ({ type, storage, reason }) => {
    logEvent("storage", `— ${type} (${storage}): ${reason}`);
    renderStorage(auth);
  });
}

function renderStorage(auth) {
  const notes = [auth.storageFallbackReason, auth.storageError].filter(Boolean);
  ui.storage.textContent = notes.length ? `${auth.storageKind} (${notes.join("; ")})` : auth.storageKind;
}

// A rejection that means the session is gone shows the signed-out state.
function noteSessionLoss(error) {
  if (isLatchkeyError(error) && (error.code === "not_authenticated" || error.code === "session_expired")) {
    setSession(error.code === "session_expired" ? "expired" : "signed-out");
  }
}

async function callApi(auth, config) {
  clearError();
  ui.callApi.disabled = true;
  ui.apiStatus.textContent = "Calling…";
  try {
    const response = await auth.fetchWithAuth(await apiUrl(auth, config));
    const text = await response.text();
    let body = text;
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON: show it as it is
    }
    ui.apiStatus.textContent = `${response.status} ${response.statusText} at ${clock(Date.now())}`;
    ui.apiStatus.dataset.status = String(response.status);
    ui.apiBody.textContent = body || "(empty body)";
    ui.apiBody.hidden = false;
  } catch (error) {
    ui.apiStatus.textContent = "The call failed.";
    delete ui.apiStatus.dataset.status;
    showError("Call the API", error);
    noteSessionLoss(error);
  } finally {
    ui.callApi.disabled = false;
  }
}

// Signs out in every tab (each logs `signedOut`) and revokes the tokens at the server.
async function signOut(auth) {
  clearError();
  ui.signOut.disabled = true;
  try {
    const result = await auth.logout({ revoke: true });
    const detail = result.revocation === "failed" ? ` (${result.error.message})` : "";
    logEvent("logout", `— revocation at the server: ${result.revocation}${detail}`, { revocation: result.revocation });
  } catch (error) {
    showError("Sign out", error);
  } finally {
    ui.signOut.disabled = false;
  }
}

async function main() {
  ui.version.textContent = await version();
  ui.status.textContent = "reading ./demo-config.json…";
  const config = await loadConfig();
  ui.issuer.textContent = config.issuer;
  ui.clientId.textContent = config.clientId;
  if (isAtproto(config)) showAtprotoSetup(config);
  expiryKey = `latchkey-demo:expiresAt:${config.issuer ?? config.handleResolver}:${config.clientId}`;

  ui.status.textContent = "creating the client…";
  const auth = await AuthClient.create(
    isAtproto(config)
      ? {
          profile: "atproto",
          clientId: config.clientId, // a loopback client: http://localhost?redirect_uri=…&scope=…
          redirectUri: `${location.origin}/`,
          scope: config.scope,
          handleResolver: config.handleResolver, // the local PDS answers resolveHandle
          plcDirectoryUrl: config.plcDirectoryUrl, // the local PLC directory
          allowInsecureLoopback: true, // the local network is plain http on loopback
          // No allowedOrigins: fetchWithAuth may call the account's PDS.
        }
      : {
          issuer: config.issuer,
          clientId: config.clientId,
          redirectUri: `${location.origin}/`,
          scope: "openid offline_access api",
          allowInsecureLoopback: true, // the test server is plain http on 127.0.0.1
          // The API is on the authorization server's origin, not this page's:
          // fetchWithAuth sends the token only to the origins named here.
          allowedOrigins: [new URL(config.whoami).origin],
        },
  );
  subscribe(auth);
  renderStorage(auth);
  if (isAtproto(config)) {
    auth.on("tokens", () => renderAccount(auth));
    auth.on("signedOut", () => renderAccount(auth));
    auth.on("sessionExpired", () => renderAccount(auth));
    ui.handleForm.addEventListener("submit", (event) => {
      event.preventDefault();
      ui.signIn.click();
    });
  }

  ui.signIn.addEventListener("click", async () => {
    clearError();
    ui.signIn.disabled = true;
    ui.session.textContent = "Redirecting to the authorization server…";
    try {
      await auth.login(loginOptions(config));
    } catch (error) {
      showError("Sign in", error);
      ui.signIn.disabled = false;
      setSession(document.body.dataset.session);
    }
  });
  // The page stays as it is; the popup's copy of this page hands the
  // response back (handleRedirectCallback below) and closes.
  ui.signInPopup.addEventListener("click", async () => {
    clearError();
    ui.signInPopup.disabled = true;
    try {
      await auth.loginWithPopup(); // not after an await: the popup opens within the click
      setSession("signed-in");
    } catch (error) {
      showError("Sign in with a popup", error);
    } finally {
      ui.signInPopup.disabled = false;
    }
  });
  ui.callApi.addEventListener("click", () => callApi(auth, config));
  ui.signOut.addEventListener("click", () => signOut(auth));

  recallExpiry();
  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    ui.status.textContent = "completing the sign-in…";
    try {
      await auth.handleRedirectCallback(); // emits `tokens` (login) and cleans the address bar
      // In a login popup the response went to the opening tab: this window is closing.
      if (window.closed) return;
    } catch (error) {
      showError("Completing the sign-in", error);
      history.replaceState(null, "", location.pathname); // do not retry a spent callback on reload
    }
  }

  if (await auth.isAuthenticated()) {
    setSession("signed-in");
    // Refreshes first if the stored token is stale (then a `tokens` event tells the expiry).
    try {
      await auth.getAccessToken();
    } catch (error) {
      showError("Getting an access token", error);
      noteSessionLoss(error);
    }
  } else {
    setSession("signed-out");
  }
  if (isAtproto(config)) await renderAccount(auth);
  setInterval(renderExpiry, 1000);
}

try {
  await main();
  ui.status.textContent = "ready";
  document.body.dataset.ready = "true";
} catch (error) {
  ui.status.textContent = `failed: ${describeError(error).text}`;
  ui.status.className = "error";
  showError("Starting the demo", error);
  document.body.dataset.ready = "error";
}
