// The demo page: loads the release package that scripts/demo staged next to it.
import { version } from "./latchkey/index.js";

const status = document.getElementById("status");
try {
  document.getElementById("version").textContent = await version();
  status.textContent = "ready";
  document.body.dataset.ready = "true";
} catch (error) {
  status.textContent = `failed to load: ${error}`;
  status.className = "error";
  document.body.dataset.ready = "error";
}
