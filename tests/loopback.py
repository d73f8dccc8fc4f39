"""The second loopback address the kiosk page's media connection needs (docs/deploy.md).

aioice leaves 127.0.0.1 out of its host candidates, so the agent's end of the
page connection is another loopback address on ``lo``; on a tablet the
``kiosk-page-media`` unit adds it. A test machine gets it here: already there,
or added when the tests run as root (it stays: harmless, as on a tablet);
otherwise the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import os
import subprocess

import ifaddr
import pytest

PAGE_MEDIA_HOST = "127.0.0.2"


def lo_addresses() -> set[str]:
    return {
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        if adapter.name == "lo"
        for ip in adapter.ips
        if isinstance(ip.ip, str)
    }


def ensure_page_media_address() -> str:
    if PAGE_MEDIA_HOST in lo_addresses():
        return PAGE_MEDIA_HOST
    if os.geteuid() != 0:
        pytest.skip(f"{PAGE_MEDIA_HOST} is not on lo and the tests cannot add it (not root)")
    subprocess.run(
        ["ip", "address", "add", f"{PAGE_MEDIA_HOST}/32", "dev", "lo"], check=True, timeout=10
    )
    assert PAGE_MEDIA_HOST in lo_addresses()
    return PAGE_MEDIA_HOST
