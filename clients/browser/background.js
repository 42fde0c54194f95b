// The right-click menu: "Save selection to Tessera" on any page, through the same call as the popup.

import { capture } from "./tessera.js";

chrome.runtime.onInstalled.addListener(() => {
  chrome.contextMenus.create({ id: "tessera-save", title: "Save selection to Tessera", contexts: ["selection"] });
});

chrome.contextMenus.onClicked.addListener(async (info, tab) => {
  if (info.menuItemId !== "tessera-save") return;
  try {
    await capture({ selection: info.selectionText || "", text: "", url: info.pageUrl || tab?.url || "", title: tab?.title || "" }, { tags: [], project: "" });
    await chrome.action.setBadgeText({ text: "✓", tabId: tab?.id });
  } catch (err) {
    console.warn("Tessera:", err.message);
    await chrome.action.setBadgeText({ text: "!", tabId: tab?.id });
  }
});
