"""Validation presets (seed 001's public sites): auto-provisioning fills validateUrl/validateRule, and
`sig providers --presets` lists them. No network: provisioning and listing are local."""

from __future__ import annotations

from harness.sigproc import Sig

SITES = {"google", "x", "reddit", "youtube", "v2ex", "zhihu"}


def test_providers_presets_lists_all_six(sig_init: Sig) -> None:
    rows = sig_init("providers", "--presets", "--format", "json", check=0).json()
    assert {r["id"] for r in rows} == SITES
    for row in rows:
        assert row["validateUrl"].startswith("https://") and row["domains"] and row["name"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["reddit"]["validateUrl"] == "https://www.reddit.com/prefs/friends"  # seed 001's value
    assert by_id["x"]["validateUrl"] == "https://x.com/i/api/2/notifications/all.json?count=1"
    assert "validateRule" in by_id["zhihu"]
    table = sig_init("providers", "--presets", "--format", "table", check=0).out
    assert "VALIDATEURL" in table and "V2EX" in table


def test_login_to_a_preset_site_writes_the_preset(sig_init: Sig) -> None:
    r = sig_init("login", "https://www.reddit.com", "--token-stdin", input="tok-PRESET-1234", check=0)
    assert r.json()["provider"] == "reddit"
    text = (sig_init.home / "config.yaml").read_text()
    block = text[text.index("  reddit:"):]
    assert "validateUrl: https://www.reddit.com/prefs/friends" in block
    assert "- reddit.com" in block and "- www.reddit.com" in block
    assert "entryUrl: https://www.reddit.com/" in block
    # The config reloads cleanly and the provider matches the bare domain too.
    status = sig_init("status", "https://reddit.com/r/python", "--format", "json", check=0).json()
    assert status["id"] == "reddit" and status["valid"] is True


def test_preset_rule_and_host_without_www(sig_init: Sig) -> None:
    sig_init("login", "https://zhihu.com/", "--token-stdin", "--as", "zh", input="tok-PRESET-5678", check=0)
    text = (sig_init.home / "config.yaml").read_text()
    block = text[text.index("  zh:"):]
    assert "validateUrl: https://www.zhihu.com/api/v4/me" in block and "validateRule:" in block
    assert "entryUrl: https://zhihu.com/" in block  # the URL given stays the entry URL


def test_other_sites_get_no_preset(sig_init: Sig) -> None:
    sig_init("login", "https://jira.example.com", "--token-stdin", input="tok-PRESET-9999", check=0)
    text = (sig_init.home / "config.yaml").read_text()
    assert "validateUrl" not in text
