import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { AuthProvider } from "latchkey/react";

import { ApiOnMount } from "./ApiOnMount";
import { App, type ReturnState } from "./App";
import { config } from "./config";

// The app's state handed through the login and back.
function onRedirectCallback(appState: ReturnState | undefined) {
  if (appState) history.replaceState(null, "", appState.returnTo);
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <AuthProvider<ReturnState> options={config.options} onRedirectCallback={onRedirectCallback}>
      <App />
      <ApiOnMount />
    </AuthProvider>
  </StrictMode>,
);
