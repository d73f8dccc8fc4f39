// A signed-in person changes their own password (issue 16): the current one, then the new
// one twice. The API ends the account's other sessions; this one stays.
import { api, dialog, field, t, toast } from "./core.js";

const MIN_PASSWORD = 12;

export async function changeOwnPassword() {
  const ok = await dialog({
    title: t("password.title"),
    okText: t("password.ok"),
    build: (body) => body.append(
      field({ label: t("password.current"), name: "current", type: "password", required: true, id: "own-current", autocomplete: "current-password" }),
      field({ label: t("password.new"), name: "next", type: "password", required: true, id: "own-new", autocomplete: "new-password", hint: t("staff.password_hint") }),
      field({ label: t("password.again"), name: "again", type: "password", required: true, id: "own-again", autocomplete: "new-password" })),
    submit: (v) => {
      if (!v.current) throw new Error(t("password.missing"));
      if (v.next.length < MIN_PASSWORD) throw new Error(t("staff.password_hint"));
      if (v.next !== v.again) throw new Error(t("password.mismatch"));
      return api("POST", "/me/password", { current_password: v.current, new_password: v.next });
    },
  });
  if (ok) toast(t("password.changed"), "good");
}
