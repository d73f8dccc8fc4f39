// What the tablet shows when a call does not go to plan (issue 16): the visitor waiting
// in the waiting room, a ring nobody answered that can be tried again, the inmate's week.
// Only text and lists: kiosk.js owns the media and the screens and calls these hooks.
"use strict";

(function () {
  // "Kari is waiting" on a contact of the list: their visitor has joined the waiting room.
  function contact(info, c, t) {
    if (!c.visitor_waiting) return;
    const line = document.createElement("p");
    line.className = "waiting-now";
    line.dataset.waiting = "yes";
    line.textContent = t("visitor_waiting", { name: c.name });
    info.append(line);
  }

  // After a call that never connected, the booking is still open (the window's end is the
  // hard end, R10): say so and offer to call again while the window lasts.
  function ended(view, t, time, dial) {
    const again = document.getElementById("ended-again");
    const button = document.getElementById("btn-call-again");
    const end = view.ended;
    const entry = end && !end.connected
      ? (view.contacts || []).find((c) => c.contact_id === end.contact_id && c.callable_now)
      : null;
    again.hidden = !entry;
    button.hidden = !entry || view.link !== "online";
    if (!entry) return;
    again.textContent = t("not_answered", { name: entry.name, time: time(entry.end) });
    button.textContent = t("call_again");
    button.onclick = () => dial(entry.booking_id);
  }

  window.kioskOffPlan = { contact, ended };
})();
