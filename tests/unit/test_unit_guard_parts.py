"""Pure parts behind the guard helper's features: env templates, JWT claims, agent markers, presets."""

from __future__ import annotations

import base64
import json

import pytest

from sigcli.cli.guard import agent_markers
from sigcli.config.edit import provider_entry
from sigcli.config.presets import PRESETS, preset_for
from sigcli.config.provision import provision
from sigcli.config.schema import normalise
from sigcli.core.envtemplate import env_name_problem, render, template_keys
from sigcli.core.jwt import claims


def test_templates() -> None:
    values = {"token": "T0K", "user.name": "ann", "a-b": "x"}
    assert render("Bearer {token}", values) == ("Bearer T0K", [])
    assert render("Bearer ${token}", values) == ("Bearer T0K", [])
    assert render("{user.name}:{a-b}", values) == ("ann:x", [])
    assert render("{missing}/{token}", values) == ("/T0K", ["missing"])
    assert render('{"json": 1} {} { token } ${', values) == ('{"json": 1} {} { token } ${', [])
    assert render("$$${token}}", values) == ("$$T0K}", [])
    assert template_keys("a {x} b ${y} {not key}") == ["x", "y"]


@pytest.mark.parametrize("name", ["DATABASE_URL", "_x", "a1"])
def test_good_names(name: str) -> None:
    assert env_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "SIG_TOKEN", "sig_home", "Ä"])
def test_bad_names(name: str) -> None:
    assert env_name_problem(name)


def _jwt(payload: object) -> str:
    def b64(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none'})}.{b64(payload)}.sig"


def test_jwt_claims() -> None:
    assert claims(_jwt({"sub": "1", "email": "a@b.c"})) == {"sub": "1", "email": "a@b.c"}
    assert claims(_jwt(["not", "an", "object"])) is None
    assert claims("a.b.c") is None and claims("not a jwt") is None and claims("eyJ.!!.x") is None


def test_agent_markers() -> None:
    assert agent_markers({}) == []
    assert agent_markers({"CLAUDECODE": "1", "SIG_AGENT": "0", "AIDER": ""}) == ["CLAUDECODE"]
    assert agent_markers({"SIG_AGENT": "yes"}) == ["SIG_AGENT"]


def test_presets_cover_seed_sites_and_provision_validly() -> None:
    assert set(PRESETS) == {"google", "x", "reddit", "youtube", "v2ex", "zhihu"}
    assert preset_for("twitter.com")[0] == "x" and preset_for("example.com") is None
    x = provision("https://x.com/home", set(), "browser")
    assert x["id"] == "x" and x["validateUrl"].startswith("https://x.com/")
    assert {"from": "cookies", "as": "ct0", "match": "ct0"} in x["extract"]
    assert any(r["name"] == "x-csrf-token" for r in x["apply"])
    token = provision("https://x.com/", {"x"}, "api-token")
    assert token["id"] == "x-2" and "extract" not in token and len(token["apply"]) == 1
    providers = {}
    for preset_id in PRESETS:
        host = PRESETS[preset_id]["domains"][0]
        entry = provision(f"https://{host}/", set(), "browser")
        providers[entry["id"]] = provider_entry(entry)  # what `sig login` writes to config.yaml
    _config, errors, warnings = normalise({"version": 2, "providers": providers})
    assert errors == [] and warnings == []


def test_identity_from_a_jwt_inside_a_cookie_and_never_a_value() -> None:
    from sigcli.core.model import Credential
    from sigcli.core.secret import Secret
    from sigcli.inject.identity import local_identity

    token = _jwt({"preferred_username": "dave", "sub": "s-9", "password": "not-shown"})
    cookie = Credential("p", "browser", {"cookie": Secret(f"theme=dark; id_token={token}; sid=abc123")})
    found = local_identity(cookie)
    assert found == {"account": "dave", "source": "jwt", "claimed": True,
                     "details": {"preferred_username": "dave", "sub": "s-9"}}
    assert local_identity(Credential("p", "cookie", {"cookie": Secret("sid=abc123")})) is None
