"""core/apply.py (templates and apply rules) and core/secret_forms.py (secret forms, redaction)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from sigcli.core.apply import apply_rules, referenced_keys, render
from sigcli.core.secret_forms import MASK, secret_forms

# -- render --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("pre-${nope}-post", {}, "pre--post"),
        ("Bearer ${token}", {"token": "tok-FAKE-0001"}, "Bearer tok-FAKE-0001"),
        ("${x-csrf-token}", {"x-csrf-token": "c-1"}, "c-1"),
        ("${a.b}|${c_d}", {"a.b": "1", "c_d": "2"}, "1|2"),
        ("${a}${a}${b}", {"a": "x", "b": "y"}, "xxy"),
        ("no template", {"a": "x"}, "no template"),
        ("$token {token} ${}", {"token": "t"}, "$token {token} ${}"),
        ("sid=${session}", {"session": "s"}, "sid=s"),
        ("", {"a": "b"}, ""),
    ],
)
def test_render(template: str, values: dict[str, str], expected: str) -> None:
    assert render(template, values) == expected


def test_render_does_not_expand_values_again() -> None:
    # A value that looks like a template is inserted literally, never rendered a second time.
    assert render("${a}", {"a": "${b}", "b": "secret"}) == "${b}"
    assert render("${a}", {"a": r"\1 \g<0>"}) == r"\1 \g<0>"


def test_referenced_keys() -> None:
    rules = [{"value": "Bearer ${token}"}, {"value": "${a}-${x-y}"}, {"action": "remove"}]
    assert referenced_keys(rules) == {"token", "a", "x-y"}


# -- apply_rules ---------------------------------------------------------------------------------------


def _rule(name: str, value: str = "", where: str = "header", action: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"in": where, "name": name, "value": value}
    if action is not None:
        rule["action"] = action
    return rule


def test_apply_set_header_default_action() -> None:
    out = apply_rules([_rule("Authorization", "Bearer ${token}")], {"token": "tok-FAKE-0001"})
    assert out.headers == {"Authorization": "Bearer tok-FAKE-0001"}
    assert out.query is None
    assert out.body is None


def test_apply_set_replaces() -> None:
    out = apply_rules([_rule("X", "1"), _rule("X", "2", action="set")], {})
    assert out.headers == {"X": "2"}


def test_apply_append_joins_with_semicolon_space() -> None:
    rules = [_rule("Cookie", "a=${a}"), _rule("Cookie", "b=${b}", action="append")]
    assert apply_rules(rules, {"a": "1", "b": "2"}).headers == {"Cookie": "a=1; b=2"}


def test_apply_append_to_nothing_sets() -> None:
    out = apply_rules([_rule("Cookie", "b=${b}", action="append")], {"b": "2"})
    assert out.headers == {"Cookie": "b=2"}


def test_apply_remove() -> None:
    rules = [_rule("X", "1"), _rule("Y", "2"), _rule("X", action="remove")]
    assert apply_rules(rules, {}).headers == {"Y": "2"}
    # Removing something that was never set is not an error.
    assert apply_rules([_rule("Z", action="remove")], {}).headers == {}


def test_apply_rules_run_in_order() -> None:
    rules = [_rule("X", "1", action="remove"), _rule("X", "2"), _rule("X", "3", action="append")]
    assert apply_rules(rules, {}).headers == {"X": "2; 3"}


def test_apply_query_and_body() -> None:
    rules = [
        _rule("Authorization", "Bearer ${t}"),
        _rule("api_key", "${t}", where="query"),
        _rule("token", "${xoxc-token}", where="body"),
        _rule("scope", "read", where="body", action="append"),
        _rule("scope", "write", where="body", action="append"),
    ]
    out = apply_rules(rules, {"t": "T", "xoxc-token": "X"})
    assert out.headers == {"Authorization": "Bearer T"}
    assert out.query == {"api_key": "T"}
    assert out.body == {"token": "X", "scope": "read; write"}


def test_apply_remove_only_in_query_or_body_leaves_none() -> None:
    out = apply_rules([_rule("a", where="query", action="remove"), _rule("b", where="body", action="remove")], {})
    assert out.query is None
    assert out.body is None


def test_apply_missing_key_renders_empty() -> None:
    assert apply_rules([_rule("X-User", "${username}")], {}).headers == {"X-User": ""}


def test_apply_unknown_location_is_ignored() -> None:
    assert apply_rules([_rule("X", "1", where="cookie-jar")], {}).headers == {}


def test_applied_repr_hides_values() -> None:
    out = apply_rules([_rule("Authorization", "Bearer ${t}")], {"t": "tok-FAKE-0001"})
    assert "tok-FAKE-0001" not in repr(out)


def test_apply_matches_the_original_sdk(fixtures_dir: Path) -> None:
    """The fixture providers' rules give the headers the original's SDK computed (outputs/sdk-interop.json)."""
    from sigcli.config.load import parse_config

    config_path = fixtures_dir / "sig-home" / ".sig" / "config.yaml"
    config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    interop = json.loads((fixtures_dir / "outputs" / "sdk-interop.json").read_text(encoding="utf-8"))
    checked = 0
    for pid, entry in interop["credentials"].items():
        if "apply_rules_headers" not in entry:
            continue
        provider = config.get(pid)
        assert provider is not None
        assert apply_rules(provider.apply, entry["values"]).headers == entry["apply_rules_headers"]
        checked += 1
    assert checked >= 1


# -- secret_forms / redact_text --------------------------------------------------------------------------


def test_secret_forms_plain_value() -> None:
    forms = secret_forms({"token": "tok-FAKE-0001"})
    assert "tok-FAKE-0001" in forms


def test_secret_forms_excludes_identifier_values() -> None:
    forms = secret_forms({"username": "alice-the-user", "password": "pw-FAKE-0003"})
    assert "alice-the-user" not in forms
    assert "pw-FAKE-0003" in forms
    for key in ("email", "user", "login"):
        assert "alice@example.com" not in secret_forms({key: "alice@example.com"})


def test_secret_forms_base64_of_user_and_password() -> None:
    forms = secret_forms({"username": "alice", "password": "pw-FAKE-0003"})
    encoded = base64.b64encode(b"alice:pw-FAKE-0003").decode()
    assert encoded in forms
    # ...and the URL-encoded form of that base64 (its "=" padding becomes %3D).
    padded = base64.b64encode(b"bob:pw-FAKE-03").decode()
    assert padded.endswith("=")
    assert quote(padded, safe="") in secret_forms({"username": "bob", "password": "pw-FAKE-03"})


def test_secret_forms_each_cookie_value() -> None:
    cookie = 'sid=abcd1234; theme=darkmode; q="quoted-val"; x=ab'
    forms = secret_forms({"cookie": cookie})
    for value in ("abcd1234", "darkmode", "quoted-val"):
        assert value in forms
    assert "ab" not in forms  # shorter than 4 chars
    assert _redact(cookie, forms) == "****"  # the whole string is a secret too
    redacted = _redact("Set-Cookie: sid=abcd1234; Path=/\ntheme=darkmode", forms)
    assert redacted == "Set-Cookie: sid=****; Path=/\ntheme=****"  # each value alone: names stay readable


def test_secret_forms_url_and_json_forms() -> None:
    value = 'pw FAKE/0003+"x"\\y'
    forms = secret_forms({"password": value})
    assert value in forms
    assert quote(value, safe="") in forms
    assert quote_plus(value) in forms
    assert json.dumps(value)[1:-1] in forms


def test_secret_forms_short_values_excluded() -> None:
    assert secret_forms({"token": "abc"}) == []
    assert secret_forms({"token": ""}) == []
    assert "abcd" in secret_forms({"token": "abcd"})


def test_secret_forms_longest_first() -> None:
    forms = secret_forms({"a": "abcd", "b": "abcdefgh", "c": "a b c d"})
    assert [len(f) for f in forms] == sorted((len(f) for f in forms), reverse=True)


def test_secret_forms_custom_keep_in_clear() -> None:
    assert "visible-id" not in secret_forms({"account": "visible-id"}, keep_in_clear={"account"})
    assert "alice-user" in secret_forms({"username": "alice-user"}, keep_in_clear=())


def _redact(text: str, forms: list[str]) -> str:
    from sigcli.core.secret_forms import redact_text

    return redact_text(text, forms)


def test_redact_text() -> None:
    values = {"token": "tok-FAKE-0001", "password": "p w/FAKE", "username": "alice-user"}
    forms = secret_forms(values)
    text = (
        "token=tok-FAKE-0001 url=p%20w%2FFAKE plus=p+w%2FFAKE json=\"p w/FAKE\" "
        f"basic={base64.b64encode(b'alice-user:p w/FAKE').decode()} user=alice-user"
    )
    out = _redact(text, forms)
    assert "tok-FAKE-0001" not in out
    assert "p%20w%2FFAKE" not in out
    assert "p+w%2FFAKE" not in out
    assert "p w/FAKE" not in out
    assert base64.b64encode(b"alice-user:p w/FAKE").decode() not in out
    assert "user=alice-user" in out
    assert out.count(MASK) == 5


def test_redact_text_longer_form_first() -> None:
    # "abcd" is inside "abcdefgh": the longer secret must be masked whole, not leave "efgh" behind.
    forms = secret_forms({"a": "abcd", "b": "abcdefgh"})
    assert _redact("x abcdefgh y", forms) == f"x {MASK} y"


def test_redact_text_no_forms_is_identity() -> None:
    assert _redact("nothing to see", []) == "nothing to see"
