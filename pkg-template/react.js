"use client";
// latchkey/react: <AuthProvider> and useAuth(). Plain JavaScript with
// React.createElement, so the package needs no JSX build; types and docs in
// react.d.ts. Nothing runs at import time, and rendering touches no browser
// API: the client is created in an effect, or by an action called before
// that effect ran, never during render; servers run neither, so a server
// render shows the children with isLoading true. "use client": a React
// Server Component (Next.js's app/layout) may import it; the bundler then
// loads it as a client module (React's server build has no hooks).
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import { AuthClient } from "./index.js";

const AuthContext = createContext(null);
// Clients a provider disposed: a provider shown again must not hand one out.
const disposedClients = new WeakSet();

const LOADING = { isLoading: true, isAuthenticated: false, user: null, error: null, client: null };
// Session changes in this tab or any other (`sync`): what the hook re-reads on.
const EVENTS = ["tokens", "user", "signedOut", "sessionExpired"];

// Creates the client and completes a login response in the address bar.
// Runs once per provider (AuthProvider's `begin`): StrictMode's second mount
// reuses the promise, so the one-time callback is never presented twice
// (that would be no_transaction).
async function start(options, onRedirectCallback) {
  const client = await AuthClient.create(options);
  // Only a response to this client's login (its redirect URI's path): an
  // app route of its own with `code` and `state` is left alone.
  if (!client.isLoginResponse()) return { client, error: null };
  let appState;
  try {
    ({ appState } = await client.handleRedirectCallback());
  } catch (error) {
    return { client, error };
  }
  // In a login popup the response went to the opening tab and this window
  // is closing: nothing to tell the app.
  if (window.closed) return { client, error: null };
  try {
    onRedirectCallback.current?.(appState);
  } catch (e) {
    // The app's own failure, after a login that succeeded: not `error`,
    // which says the login failed. Reported the way an exception thrown by
    // an event listener is: uncaught, on the page's `error` event.
    reportUncaught(e);
  }
  return { client, error: null };
}

function reportUncaught(error) {
  if (typeof reportError === "function") {
    reportError(error);
  } else {
    setTimeout(() => {
      throw error;
    });
  }
}

// A login that failed (`error`) stops being news once the user is signed in.
async function readState(client, error) {
  const isAuthenticated = await client.isAuthenticated();
  const user = isAuthenticated ? await client.getUser().catch(() => null) : null;
  return { isLoading: false, isAuthenticated, user, error: isAuthenticated ? null : error, client };
}

// A fetch's input as the client reads it at the call: a relative URL
// resolved against the page now, a mutable init copied. Used when the call
// must wait for the client, so that what is sent is what was given.
function asGiven(input, init) {
  const href = typeof input === "string" || input instanceof URL ? new URL(String(input), document.baseURI).href : input;
  return [href, init && typeof init === "object" ? { ...init } : init];
}

export function AuthProvider({ options, onRedirectCallback, children }) {
  const [state, setState] = useState(LOADING);
  const started = useRef(null);
  // Bumped when an action starts the client again after create() failed:
  // the provider's effect then follows the new client.
  const [attempt, setAttempt] = useState(0);
  // The last start that failed, until an action tries again.
  const failure = useRef(null);
  // The latest callback, without restarting the client when it changes.
  const onRedirect = useRef(onRedirectCallback);
  onRedirect.current = onRedirectCallback;
  // Options are read once, at mount (remount with a `key` to change them).
  const initialOptions = useRef(options);

  // The client's disposal, pending from this effect's cleanup.
  const disposing = useRef(undefined);
  // Between this effect's cleanup and its next run: unmounted, or hidden.
  const away = useRef(false);
  // Disposes the started client on the next macrotask, unless this effect
  // runs again first (StrictMode's rehearsal, Fast Refresh, <Activity>
  // showing the subtree again).
  const disposeSoon = useCallback(() => {
    clearTimeout(disposing.current);
    disposing.current = setTimeout(() => {
      const gone = started.current;
      started.current = null;
      // A task later: an action that waited for this client has made its
      // call by then (what is in flight runs to its end).
      gone?.then(
        ({ client }) => {
          disposedClients.add(client);
          setTimeout(() => client.dispose());
        },
        () => {},
      );
    });
  }, []);
  // Starts the client, once: from this provider's effect, or from an action
  // called before it ran (React runs its children's effects first). Never
  // during render, so a server render touches no browser API. An action
  // called while the provider is away starts a client only for that call:
  // it is disposed after it, unless the provider comes back first.
  // A client that could not be created (offline, a deploy's missing wasm)
  // is not kept: the next action (`byAction`) starts it again. The
  // provider's own effect only shows the failure: were it to start again
  // too, a create() that fails at once would re-run it without end.
  const begin = useCallback(
    (byAction) => {
      if (started.current !== null) return started.current;
      if (failure.current !== null && !byAction) return failure.current;
      if (away.current) disposeSoon();
      const retry = failure.current !== null;
      failure.current = null;
      const starting = start(initialOptions.current, onRedirect);
      starting.catch(() => {
        if (started.current !== starting) return;
        started.current = null;
        failure.current = starting;
      });
      started.current = starting;
      if (retry) setAttempt((n) => n + 1);
      return starting;
    },
    [disposeSoon],
  );

  useEffect(() => {
    // StrictMode's rehearsal (and Fast Refresh) run the cleanup and then
    // this effect again at once: the client is kept.
    away.current = false;
    clearTimeout(disposing.current);
    // Shown again after its client was disposed (<Activity> runs the
    // cleanups of a subtree it hides): a new client, loading meanwhile.
    setState((s) => (s.client && disposedClients.has(s.client) ? LOADING : s));
    let active = true;
    const unsubscribe = [];
    begin().then(
      ({ client, error }) => {
        if (!active) return;
        let lastError = error;
        const refresh = () =>
          readState(client, lastError).then(
            (next) => active && setState(next),
            (e) => active && setState({ ...LOADING, isLoading: false, client, error: (lastError = e) }),
          );
        for (const name of EVENTS) unsubscribe.push(client.on(name, refresh));
        refresh();
      },
      (error) => active && setState({ ...LOADING, isLoading: false, error }),
    );
    return () => {
      active = false;
      away.current = true;
      for (const off of unsubscribe) off();
      // Unmounted for good: the client stops hearing other tabs and the
      // tab's visibility (what it has in flight runs to its end).
      disposeSoon();
    };
  }, [begin, disposeSoon, attempt]);

  const { client } = state;
  // The client, ready and in use at the call: not one disposed since this
  // value was rendered (an unmount, <Activity> hiding the provider).
  const inUse = useCallback(() => (client && !disposedClients.has(client) ? client : null), [client]);
  // Waits for the client: usable before it is ready (e.g. in a descendant's
  // mount effect); rejects as create() did if it could not be created.
  const ready = useCallback(async () => (await begin(true)).client, [begin]);
  const loginWithPopup = useCallback(
    // Straight to the client when it is ready: the popup must open before
    // any await, within the click's user activation.
    (popupOptions) => inUse()?.loginWithPopup(popupOptions) ?? ready().then((c) => c.loginWithPopup(popupOptions)),
    [inUse, ready],
  );
  // The actions keep their identity while the session changes: an effect
  // that lists one as a dependency (as the hooks lint rule asks) must not run
  // again on every token event, or one that refreshes would loop.
  const login = useCallback(async (loginOptions) => (await ready()).login(loginOptions), [ready]);
  const logout = useCallback(async (logoutOptions) => (await ready()).logout(logoutOptions), [ready]);
  const getAccessToken = useCallback(async (tokenOptions) => (await ready()).getAccessToken(tokenOptions), [ready]);
  // Straight to the client when it is ready (its fast path, and what the
  // call was given, read now); else what was given, kept as given. An input
  // that is not a URL rejects, as the client's own call does.
  const fetchWithAuth = useCallback(
    (input, init) => {
      const now = inUse();
      if (now) return now.fetchWithAuth(input, init);
      let given;
      try {
        given = asGiven(input, init);
      } catch {
        given = [input, init];
      }
      return ready().then((c) => c.fetchWithAuth(...given));
    },
    [inUse, ready],
  );
  const value = useMemo(
    () => ({ ...state, login, loginWithPopup, logout, getAccessToken, fetchWithAuth }),
    [state, login, loginWithPopup, logout, getAccessToken, fetchWithAuth],
  );
  return createElement(AuthContext.Provider, { value }, children);
}

export function useAuth() {
  const value = useContext(AuthContext);
  if (value === null) throw new Error("useAuth() must be called inside <AuthProvider>");
  return value;
}
