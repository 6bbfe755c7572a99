"""Session cookies survive between browser logins (issue 19 item 6): Chromium writes only persistent cookies
to the profile, so a site that logs in with session cookies alone would need a person at every login.
sig keeps the provider's session cookies sealed with its credential and puts them back into the next
browser, so `sig login P --mode headless --force` succeeds with nobody at the page, while the server still
honours the session.

The site (tests/harness/login_sites.py, scenario 5) sets `sid` without Max-Age/Expires; page JavaScript plays
the user only while `auto_user` is on."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator

import pytest

from harness.browser_login import CHROMIUM
from harness.browser_login import configure as _configure
from harness.browser_login import creds as _creds
from harness.login_sites import LoginSites
from harness.sigproc import Sig
from sigcli.browser.session_cookies import PAYLOAD_KEY
from sigcli.store.credentials import CredentialStore

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome installed (apt-get install chromium)"),
    pytest.mark.timeout(240),
]

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

INTRANET = """\
  {id}:
    domains: ["127.0.0.1"]
    entryUrl: {url}/
    validateUrl: {url}/api/me
    strategy: browser
    requiredCookies: [sid]
    extract:
      - {{from: cookies, as: sid, match: sid}}
    apply:
      - {{in: header, name: Cookie, value: "sid=${{sid}}"}}
"""
VISIBLE_HEADLESS = {"SIG_BROWSER_VISIBLE_HEADLESS": "1"}  # the "window" runs headless (no display in CI)


@pytest.fixture
def sites() -> Iterator[LoginSites]:
    with LoginSites() as running:
        yield running


def _stored(sig: Sig, provider: str) -> dict[str, object]:
    """The sealed payload, opened with the key (what the SDKs read); {} when there is no credential."""
    credential = CredentialStore(str(sig.home / "credentials"), str(sig.home / "encryption.key")).read(provider)
    return credential.to_payload() if credential is not None else {}


@pytest.mark.parametrize("adapter", [
    "cdp",
    pytest.param("playwright", marks=pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="playwright not installed")),
])
def test_headless_relogin_restores_the_kept_session_cookies(sig: Sig, sites: LoginSites, adapter: str) -> None:
    _configure(sig, INTRANET.format(id="intranet", url=sites.session)
               + INTRANET.format(id="intranet-twin", url=sites.session),
               adapter=adapter, browser_extra="  headlessTimeout: 5000\n")

    # 1. A person logs in, in a window.
    first = sig("login", "intranet", "--mode", "visible", env=VISIBLE_HEADLESS, timeout=120)
    assert first.code == 0, first.err
    (sid,) = sites.issued("session")
    assert _creds(sig, "intranet")["headers"]["Cookie"] == f"sid={sid}"

    # Kept sealed with the credential, outside `values`: only the session cookie (the persistent `theme` is
    # in the profile already), and nowhere in clear on disk.
    payload = _stored(sig, "intranet")
    assert payload["values"] == {"sid": sid}
    kept = payload[PAYLOAD_KEY]
    assert isinstance(kept, list) and [(c["name"], c["value"], c["domain"], c["path"], c["httpOnly"])
                                       for c in kept] == [("sid", sid, "127.0.0.1", "/", True)]
    path = sig.home / "credentials" / "intranet.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sid.encode() not in path.read_bytes()

    # From now on nobody is at the page.
    sites.auto_user = False

    # 2. The control: the same site under another provider, on the same profile, has nothing to restore:
    #    the browser did not keep the session cookie, so a headless login cannot complete.
    twin = sig("login", "intranet-twin", "--mode", "headless", timeout=120)
    assert twin.code == 1 and "did not complete" in twin.err, twin.err

    # 3. The provider itself: its kept session cookie goes back into the new browser, the site still honours
    #    it, and the login completes with nobody at the page (no new session was issued).
    again = sig("login", "intranet", "--mode", "headless", "--force", "--verbose", timeout=120)
    assert again.code == 0, again.err
    assert "restored 1 session cookie(s)" in again.err
    assert sites.issued("session") == [sid]
    assert json.loads(again.out)["provider"] == "intranet"
    assert _stored(sig, "intranet")[PAYLOAD_KEY] == kept  # still kept for the next time

    # 4. The window (the shared one, through its relay) gets them too: nobody needs to type anything.
    window = sig("login", "intranet", "--mode", "visible", "--force", env=VISIBLE_HEADLESS, timeout=120)
    assert window.code == 0, window.err
    assert sites.issued("session") == [sid]

    # 5. Once the server ends the session, the restored cookie is not a login any more.
    sites.revoke("session")
    stale = sig("login", "intranet", "--mode", "headless", "--force", timeout=120)
    assert stale.code == 1 and "did not complete" in stale.err, stale.err

    # 6. `sig logout` forgets them with the session (whether it empties the credential or removes it).
    assert sig("logout", "intranet", check=0).code == 0
    assert PAYLOAD_KEY not in _stored(sig, "intranet")

    sig.assert_no_secret(sid)
