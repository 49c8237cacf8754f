import { useEffect, useRef, useState } from "react";
import { useAuth } from "latchkey/react";

import { describe, type WhoAmI } from "./App";
import { config } from "./config";

// Calls the API once, as soon as it mounts, which is in the provider's
// first render. React runs a child's effects before its parent's, so this
// effect runs before <AuthProvider>'s own: the action waits for the client
// (and for a login response in the address bar to be completed).
export function ApiOnMount() {
  const { fetchWithAuth } = useAuth();
  const [result, setResult] = useState<string | null>(null);
  const called = useRef(false);
  useEffect(() => {
    // One call per page, as in production: StrictMode runs this effect twice.
    if (called.current) return;
    called.current = true;
    fetchWithAuth(config.apiUrl)
      .then(async (response) => `${response.status} ${((await response.json()) as WhoAmI).sub}`)
      .catch(describe)
      .then(setResult);
  }, []);
  return result === null ? null : <p id="on-mount">{result}</p>;
}
