"""skills/sigcli-auth/references/config-template.yaml loads with the real `sig`, as a whole config file and
the way the skills tell an agent to add one block to an existing config."""

from __future__ import annotations

import re

from skill_setup import SKILLS, TEMPLATE, template

from harness.sigproc import Sig

PROVIDERS = ["ms-graph", "ms-teams", "app-slack"]


def test_template_is_a_config_sig_loads_without_warnings(sig_init: Sig) -> None:
    (sig_init.home / "config.yaml").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    result = sig_init("providers", "--format", "json", check=0)
    assert result.err == ""  # no "config: ..." warning, no error
    listed = result.json()
    assert [p["id"] for p in listed] == PROVIDERS
    assert all(p["strategy"] == "browser" and p["configured"] is False for p in listed)
    status = sig_init("status", "app-slack", "--format", "json")
    assert status.code == 3 and status.json()["configured"] is False  # nothing stored yet: log in
    doctor_config = sig_init("status", "--format", "json", check=0)
    assert doctor_config.err == ""


def test_template_keeps_the_seed_names_and_real_hosts() -> None:
    providers = template()["providers"]
    assert list(providers) == PROVIDERS
    assert providers["ms-graph"]["domains"] == ["graph.microsoft.com"]
    assert providers["ms-teams"]["domains"] == ["teams.cloud.microsoft"]
    assert "slack.com" in providers["app-slack"]["domains"]
    for pid in PROVIDERS:  # every skill's helper gets its credential through these apply rules
        assert any(rule["name"] == "Authorization" for rule in providers[pid]["apply"])


def test_a_block_added_as_the_skills_say_loads(sig_init: Sig) -> None:
    """SKILL.md: put the block under `providers:`; if the file says `providers: {}`, make that line `providers:`."""
    config = sig_init.home / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert "providers: {}\n" in text  # what `sig init` writes
    skill_md = (SKILLS / "slack" / "SKILL.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", skill_md, re.S).group(1)  # type: ignore[union-attr]
    block = block.replace("T00000000", "T0ACME123")  # the person's team id, as the skill asks
    config.write_text(text.replace("providers: {}\n", "providers:\n" + block), encoding="utf-8")
    result = sig_init("providers", "--format", "json", check=0)
    assert result.err == "" and [p["id"] for p in result.json()] == ["app-slack"]
