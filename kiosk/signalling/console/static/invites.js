// A booking's invite (issue 16): it goes out by e-mail with the booking; staff may send
// the same link again, or make a new link, which stops the old one working.
import { api, dialog, fmtTime, h, t, toast } from "./core.js";

// What the booking's confirmation says of its invite: sent to whom, or why not.
export function inviteOutcome(booking) {
  if (booking.invite_sent) return t("booking.invite_sent", { email: booking.invite_sent_to });
  return t(`booking.invite_not_sent.${booking.invite_not_sent_reason}`);
}

// The two actions, side by side: the same link again (when one went), or a new one.
export function inviteActions(booking, contact, { small = true, ids = false, resend = true } = {}) {
  const name = contact ? contact.name : "";
  const size = small ? "btn small" : "btn";
  return [
    resend && h("button", {
      type: "button", class: size, id: ids ? "booking-resend" : undefined,
      "aria-label": t("invite.resend_for", { name }), onclick: () => resendInvite(booking),
    }, t("invite.resend")),
    h("button", {
      type: "button", class: size, id: ids ? "booking-invite" : undefined,
      "aria-label": t("invite.new_for", { name }), onclick: () => issueInvite(booking, contact),
    }, t("invite.new")),
  ];
}

export async function resendInvite(booking) {
  try {
    const sent = await api("POST", `/bookings/${encodeURIComponent(booking.id)}/invites/resend`);
    toast(t("invite.resent", { email: sent.invite_sent_to }), "good");
  } catch (err) {
    toast(err.message, "bad");
  }
}

// A new link is asked for explicitly: the one sent before stops working.
export async function issueInvite(booking, contact) {
  const name = contact ? contact.name : "";
  const invite = await dialog({
    title: t("invite.new_title"),
    okText: t("invite.new_ok"),
    danger: true,
    build: (body) => body.append(h("p", { id: "invite-new-lede" }, t("invite.new_lede", { name }))),
    submit: () => api("POST", `/bookings/${encodeURIComponent(booking.id)}/invites`),
  });
  if (!invite) return;
  await dialog({
    title: t("invite.title"),
    okText: t("action.close"),
    build: (body) => {
      const input = h("input", { id: "invite-url", type: "text", readonly: true, value: invite.url, class: "mono" });
      body.append(
        h("p", {}, t("invite.lede", { name, from: fmtTime(invite.valid_from), until: fmtTime(invite.valid_until) })),
        h("div", { class: "field" }, h("label", { for: "invite-url" }, t("invite.url")), input),
        h("p", { class: "hint", id: "invite-mailed" }, invite.invite_sent
          ? t("invite.mailed", { email: invite.invite_sent_to }) : t("invite.not_mailed")),
        h("p", { class: "hint" }, t("invite.hint")),
      );
    },
    submit: async () => true,
  });
}
