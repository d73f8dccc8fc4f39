// A defence-counsel or police call's receipt (issue 18): when the server has one for this
// invitation, offer it for download. Asked when the page opens (the link keeps offering it
// for the retention period) and, a few times, when the call ends (the server records the
// end and signs a checkpoint just after).
"use strict";

(function () {
  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const url = "/visit/" + encodeURIComponent(token) + "/receipt";
  let offered = false;

  async function offer() {
    if (offered) return true;
    try {
      const response = await fetch(url, { method: "HEAD", cache: "no-store" });
      if (!response.ok) return false;
    } catch (_) {
      return false;
    }
    document.getElementById("receipt-link").href = url;
    document.getElementById("receipt").hidden = false;
    offered = true;
    return true;
  }

  function afterTheCall(tries) {
    offer().then((found) => {
      if (!found && tries > 0) setTimeout(() => afterTheCall(tries - 1), 1500);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    offer();
    new MutationObserver(() => {
      if (document.body.dataset.screen === "end") afterTheCall(12);
    }).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  });
})();
