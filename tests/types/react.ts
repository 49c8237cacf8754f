// latchkey/react as an app uses it, and misuse the types must refuse.
// Plain createElement (no JSX) keeps this folder free of a JSX setting.
import { createElement, type ReactElement } from "react";
import { AuthProvider, useAuth, type AuthState } from "../../pkg-template/react.js";
import type { AtprotoUser, AuthClient, UserClaims } from "../../pkg-template/index.js";

interface Return {
  returnTo: string;
}

const options = { issuer: "https://idp.example", clientId: "spa", redirectUri: "https://app.example/" };

export const root: ReactElement = createElement(
  AuthProvider<Return>,
  { options, onRedirectCallback: (appState: Return | undefined) => void appState?.returnTo },
  createElement(Profile),
);

function Profile(): ReactElement | null {
  const auth: AuthState = useAuth();
  if (auth.isLoading) {
    const client: null = auth.client;
    const authed: false = auth.isAuthenticated;
    void [client, authed];
    return null;
  }
  if (auth.client === null) {
    // Narrowed to the failed state: there is an error.
    const message: string = auth.error.message;
    return createElement("p", null, message);
  }
  const client: AuthClient = auth.client;
  const user: UserClaims | null = auth.user;
  const onClick = async () => {
    await auth.loginWithPopup<Return>({ appState: { returnTo: "/" }, timeoutSeconds: 60 });
    await auth.login({ extraParams: { prompt: "consent" } });
    const res: Response = await auth.fetchWithAuth("https://api.example/me", { method: "GET" });
    const token: string = await auth.getAccessToken();
    const out = await auth.logout({ revoke: true });
    void [res, token, out.revocation, client];
  };
  return createElement("button", { onClick }, user?.sub ?? "sign in");
}

// A `profile: "atproto"` app: `user` is getUser()'s account, as with
// getUser<AtprotoUser>().
export function Account(): ReactElement | null {
  const auth = useAuth<AtprotoUser>();
  if (auth.isLoading || auth.client === null || auth.user === null) return null;
  const handle: string | null = auth.user.handle;
  const pds: string = auth.user.pds;
  return createElement("p", null, `${auth.user.sub} ${handle ?? "no handle"} ${pds}`);
}

export function misuse(): void {
  // @ts-expect-error options are required
  createElement(AuthProvider, {});

  // @ts-expect-error unknown client option
  createElement(AuthProvider, { options: { ...options, clientld: "typo" } });

  createElement(AuthProvider<Return>, {
    options,
    // @ts-expect-error the callback gets the declared appState type
    onRedirectCallback: (appState: number) => void appState,
  });

  const auth = useAuth();
  // @ts-expect-error the client may not exist yet
  const client: AuthClient = auth.client;

  // @ts-expect-error user may be null
  const sub: string = auth.user.sub;

  if (!auth.isLoading && auth.user) {
    // @ts-expect-error by default the user is UserClaims, which has no typed `pds`
    const pds: string = auth.user.pds;
    void pds;
  }

  // @ts-expect-error only what getUser() can resolve with
  useAuth<{ sub: number }>();

  if (auth.isLoading) {
    // @ts-expect-error never authenticated while loading
    const authed: true = auth.isAuthenticated;
    void authed;
  }
  void [client, sub];
}
