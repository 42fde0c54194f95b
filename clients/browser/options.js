// The options page: the gateway's address and the API key, pasted once; the origin to allow on the gateway.

import { saveSettings, settings } from "./tessera.js";

const $ = (id) => document.getElementById(id);
$("origin").textContent = location.origin;
settings().then((s) => {
  $("gateway").value = s.gateway;
  $("key").value = s.key;
});
$("options").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const origin = await saveSettings($("gateway").value.trim() || "http://127.0.0.1:8470", $("key").value);
    const local = /^http:\/\/(127\.0\.0\.1|localhost)(:|$)/.test(origin);
    if (!local && !(await chrome.permissions.request({ origins: [`${origin}/*`] }))) {
      throw new Error(`Without access to ${origin}, the extension cannot reach the gateway.`);
    }
    $("status").className = "ok";
    $("status").textContent = `Saved: ${origin}.`;
  } catch (err) {
    $("status").className = "error";
    $("status").textContent = err.message;
  }
});
