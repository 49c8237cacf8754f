import { useState } from "react";
import { isLatchkeyError } from "latchkey";
import { useAuth } from "latchkey/react";

import { config } from "./config";

export interface ReturnState {
  returnTo: string;
}

export interface WhoAmI {
  sub: string;
}

export function describe(error: unknown): string {
  return isLatchkeyError(error) ? error.code : String(error);
}

export function App() {
  const auth = useAuth();
  const [api, setApi] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);

  if (auth.isLoading) return <p id="status">loading</p>;
  if (auth.client === null) return <p id="status">failed: {describe(auth.error)}</p>;

  // Every action reports its own failure; the session state re-renders by itself.
  const attempt = (action: () => Promise<unknown>) => () => {
    setFailure(null);
    action().catch((error: unknown) => setFailure(describe(error)));
  };
  const callApi = attempt(async () => {
    const response = await auth.fetchWithAuth(config.apiUrl);
    const body = (await response.json()) as WhoAmI;
    setApi(`${response.status} ${body.sub}`);
  });

  return (
    <main>
      <p id="status">{auth.isAuthenticated ? "signed in" : "signed out"}</p>
      {auth.error && <p id="callback-error">{describe(auth.error)}</p>}
      {failure && <p id="failure">{failure}</p>}
      {auth.isAuthenticated ? (
        <>
          <p id="user">{auth.user?.sub}</p>
          <button id="call-api" onClick={callApi}>Call the API</button>
          <button id="sign-out" onClick={attempt(() => auth.logout())}>Sign out</button>
          {api && <p id="api">{api}</p>}
        </>
      ) : (
        <>
          <button id="sign-in" onClick={attempt(() => auth.login<ReturnState>({ appState: { returnTo: "/after-login" } }))}>
            Sign in
          </button>
          <button id="sign-in-popup" onClick={attempt(() => auth.loginWithPopup())}>
            Sign in with a popup
          </button>
        </>
      )}
    </main>
  );
}
