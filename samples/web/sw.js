// Service worker for pushctl's Web Push notifications.
//
// pushctl sends (encrypted, RFC 8291) the Notifications API's own shape:
//   {"title": "...", "options": {"body", "icon", "image", "badge", "tag", "requireInteraction",
//                                "actions": [{"action", "title"}], "data": {"url", "action_urls", ...}}}
// so showing it is one call. A click opens options.data.url (or the clicked action's URL).

self.addEventListener("push", (event) => {
  let message = { title: "New notification", options: {} };
  if (event.data) {
    try {
      message = event.data.json();
    } catch (e) {
      message = { title: event.data.text(), options: {} };
    }
  }
  const title = message.title || "New notification";
  event.waitUntil(self.registration.showNotification(title, message.options || {}));
});

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data || {};
  const urls = data.action_urls || {};
  const url = (event.action && urls[event.action]) || data.url;
  event.notification.close();
  if (!url) return;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const w of windows) {
        if (w.url === url && "focus" in w) return w.focus();
      }
      return self.clients.openWindow(url);
    })
  );
});
