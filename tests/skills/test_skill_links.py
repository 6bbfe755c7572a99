"""The skills follow an API's own links (next pages) only to the host they were pointed at."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from skill_setup import SKILLS


def _sigreq() -> ModuleType:
    spec = importlib.util.spec_from_file_location("links_sigreq", SKILLS / "_shared" / "sigreq.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sigreq = _sigreq()
BASE = "https://graph.example.com/v1.0"


def test_a_path_is_joined_to_the_base() -> None:
    assert sigreq.api_url(BASE, "/me/messages", "Graph") == BASE + "/me/messages"


def test_a_link_to_the_same_host_is_followed() -> None:
    link = "https://GRAPH.example.com/v1.0/me/messages?$skiptoken=x"
    assert sigreq.api_url(BASE, link, "Graph") == link


@pytest.mark.parametrize("link", ["https://evil.example/v1.0/me", "http://graph.example.com/v1.0/me",
                                  "https://graph.example.com:8443/v1.0/me"])
def test_a_link_elsewhere_is_refused(link: str) -> None:
    with pytest.raises(sigreq.SkillError) as info:
        sigreq.api_url(BASE, link, "Graph")
    assert info.value.code == "API_ERROR" and "Graph sent a link to another host" in info.value.message
