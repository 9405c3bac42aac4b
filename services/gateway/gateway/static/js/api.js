// The orchestrator's API through the gateway (/api/*), with the API token kept in this tab only.
import { $ } from "./util.js";

const TOKEN_KEY = "agentsys.apiToken";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY); // null: never asked; "": asked, none given
}

function showToken() {
  const t = token();
  $("#token-button").textContent = t ? "API token: set" : t === "" ? "API token: none" : "API token: not set";
}

let asking = null;

// Ask once (a dialog, never a URL); answers are shared by concurrent callers.
export function askToken(reason) {
  if (asking) return asking;
  const dialog = $("#token-dialog");
  $("#token-reason").textContent = reason;
  $("#token-input").value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "save") sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
      else if (token() === null) sessionStorage.setItem(TOKEN_KEY, "");
      asking = null;
      showToken();
      resolve(token());
    }, { once: true });
  });
  dialog.showModal();
  return asking;
}

export function setupToken() {
  showToken();
  $("#token-button").addEventListener("click", () => askToken("Set the orchestrator's API token for this tab."));
}

export async function api(path, { method = "GET", body, write = method !== "GET" } = {}) {
  if (write && token() === null) {
    await askToken("Changing things (agent switches, cancel, retry) needs the orchestrator's API token.");
  }
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`/api${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
    if (response.status === 401 && attempt === 0) {
      await askToken("The orchestrator refused the token (401). Enter its API token.");
      continue;
    }
    const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data?.detail ?? response.statusText);
    return data;
  }
}
