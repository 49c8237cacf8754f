// The demo page: loads the release package that scripts/demo staged next to it.
import init, { version } from "./latchkey/latchkey.js";

const status = document.getElementById("status");
try {
  await init();
  document.getElementById("version").textContent = version();
  status.textContent = "ready";
  document.body.dataset.ready = "true";
} catch (error) {
  status.textContent = `failed to load: ${error}`;
  status.className = "error";
  document.body.dataset.ready = "error";
}
