// latchkey/react: React (18 or later) bindings. One client per
// <AuthProvider>, its state through useAuth().
import type { ReactElement, ReactNode } from "react";
import type {
  AtprotoUser,
  AuthClient,
  AuthClientOptions,
  GetAccessTokenOptions,
  LoginOptions,
  LogoutOptions,
  LogoutResult,
  PopupLoginOptions,
  RedirectResult,
  UserClaims,
} from "./index.js";

/** Props of {@link AuthProvider}. */
export interface AuthProviderProps<AppState = unknown> {
  /** The client's options, read once at mount (remount with a `key` to change them). */
  options: AuthClientOptions;
  /**
   * Called once the login response in the address bar (`code` or `error`,
   * with `state`, at `redirectUri`'s path; the same parameters on another
   * path are the app's own) was handled successfully, with the `appState` given to
   * `login`; e.g. to navigate to `appState.returnTo`. Not called in a login
   * popup (the response goes to the opening tab). If it throws, the login
   * still stands and `error` stays null: the exception is reported as
   * uncaught (the page's `error` event), like one thrown by an event listener.
   */
  onRedirectCallback?: (appState: AppState | undefined) => void;
  children?: ReactNode;
}

/**
 * Creates one {@link AuthClient} (once, even under StrictMode's double
 * mount), completes a login response found in the address bar, and gives
 * its descendants {@link useAuth}. Renders `children` at once; on the server
 * they render with `isLoading: true`. Unmounted (or hidden in an
 * `<Activity>`), it disposes its client ({@link AuthClient.dispose}); shown
 * again, it starts a new one from the stored session (a session kept in
 * memory goes with the disposed client).
 */
export function AuthProvider<AppState = unknown>(props: AuthProviderProps<AppState>): ReactElement;

/**
 * What {@link useAuth} returns in every state. The actions may be called as
 * soon as the provider has mounted, `isLoading` still true included (e.g. in
 * a descendant's mount effect, which React runs before the provider's own):
 * they wait for the client, and for a login response in the address bar to
 * be completed, then run as the client's methods do (or reject as its
 * creation did, if that failed).
 */
export interface AuthActions {
  /** Redirects to the authorization server ({@link AuthClient.login}). */
  login<AppState = unknown>(options?: LoginOptions<AppState>): Promise<void>;
  /**
   * Logs in in a popup ({@link AuthClient.loginWithPopup}). Call it from a
   * click handler once `isLoading` is false, so the popup opens within the
   * click's user activation.
   */
  loginWithPopup<AppState = unknown>(options?: PopupLoginOptions<AppState>): Promise<RedirectResult<AppState>>;
  /** Signs out in every tab ({@link AuthClient.logout}). */
  logout(options?: LogoutOptions): Promise<LogoutResult>;
  /** A valid access token ({@link AuthClient.getAccessToken}). */
  getAccessToken(options?: GetAccessTokenOptions): Promise<string>;
  /** `fetch` with the access token ({@link AuthClient.fetchWithAuth}). */
  fetchWithAuth(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/** Before the client exists: always so on the server. */
export interface AuthLoading extends AuthActions {
  readonly isLoading: true;
  readonly isAuthenticated: false;
  readonly user: null;
  readonly error: null;
  readonly client: null;
}

/**
 * The client could not be created (`error` says why, e.g. `invalid_option`,
 * or `discovery_failed` for a page loaded offline). The next action creates
 * it again, and the provider follows the new client.
 */
export interface AuthFailed extends AuthActions {
  readonly isLoading: false;
  readonly isAuthenticated: false;
  readonly user: null;
  readonly error: Error;
  readonly client: null;
}

/**
 * The client is ready. Re-rendered whenever the session changes in any tab
 * (`tokens`, `user`, `signedOut`, `sessionExpired`). `User` is what the client's
 * `getUser()` resolves with: {@link UserClaims}, or {@link AtprotoUser} for
 * `profile: "atproto"` (`useAuth<AtprotoUser>()`).
 */
export interface AuthReady<User extends UserClaims | AtprotoUser = UserClaims> extends AuthActions {
  readonly isLoading: false;
  readonly isAuthenticated: boolean;
  /**
   * The client's `getUser()`: the verified ID token claims (null without
   * `openid`), or with `profile: "atproto"` the account. Null when signed out.
   */
  readonly user: User | null;
  /**
   * Why completing the login response failed (a `LatchkeyError`), if it did;
   * null again once the user is signed in. Never an exception thrown by
   * `onRedirectCallback`.
   */
  readonly error: Error | null;
  readonly client: AuthClient;
}

/** The state of the nearest {@link AuthProvider}'s client (`User`: see {@link AuthReady}). */
export type AuthState<User extends UserClaims | AtprotoUser = UserClaims> = AuthLoading | AuthFailed | AuthReady<User>;

/**
 * The nearest {@link AuthProvider}'s state and actions; throws outside one.
 * With `profile: "atproto"`, `useAuth<AtprotoUser>()` types `user` as the
 * account (as `getUser<AtprotoUser>()` does).
 */
export function useAuth<User extends UserClaims | AtprotoUser = UserClaims>(): AuthState<User>;
