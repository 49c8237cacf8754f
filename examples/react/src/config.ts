import type { AuthClientOptions } from "latchkey";

// Where the app finds its authorization server and API. A real app writes
// them here; the end-to-end test injects them (tests/e2e/react.test.mjs).
export interface AppConfig {
  options: AuthClientOptions;
  apiUrl: string;
}

declare global {
  interface Window {
    latchkeyExample?: AppConfig;
  }
}

export const config: AppConfig = window.latchkeyExample ?? {
  options: {
    issuer: "https://idp.example.com",
    clientId: "spa",
    redirectUri: `${location.origin}/`,
    scope: "openid offline_access api",
    // The token goes only to these origins (default: the page's own).
    allowedOrigins: ["https://api.example.com"],
  },
  apiUrl: "https://api.example.com/me",
};
