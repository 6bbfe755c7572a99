"""validateRule in the sandboxed QuickJS: syntax check, evaluation, fail-closed limits, no host access."""

from __future__ import annotations

import json
import time

import pytest

from sigcli.rules import jsrule
from sigcli.rules.jsrule import MAX_RULE_LENGTH, evaluate, rule_syntax_error

JSON_RES = {"status": 200, "body": json.dumps({"ok": True, "data": {"items": [1, 2, 3]}}),
            "headers": {"content-type": "application/json; charset=utf-8"}}
HTML_RES = {"status": 200, "body": "<html><body>welcome back, Ada</body></html>",
            "headers": {"content-type": "text/html"}}


def evaluate_rule(rule: str, res: dict[str, object]) -> bool:
    """The verdict alone (what the validation probe acts on)."""
    return evaluate(rule, res)[0]


# -- syntax ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    "res.status === 200",
    "res.body.ok === true",
    'typeof res.body === "string" && res.body.includes("welcome")',
    "res.body?.data?.items?.length > 2",
    "res.status === 200, res.body.ok",  # a comma expression is one expression
    "(() => res.status)() === 200",
    "1 // a trailing comment is ended by the wrapper's newline",
    "/* leading */ res.status === 200",
    "res.status ===\n200",
    "`template ${res.status}`.length > 0",
])
def test_valid_syntax(rule: str) -> None:
    assert rule_syntax_error(rule) is None


@pytest.mark.parametrize("rule", [
    "res.status ===",
    "res.status === 200 )",
    "while (true) {}",
    "throw new Error('x')",
    "1 /*",
    "*/ 1",
    "`unterminated",
    '"line continuation \\',
    "...res",
    "",
    "   ",
])
def test_syntax_errors(rule: str) -> None:
    message = rule_syntax_error(rule)
    assert message
    assert "\n" not in message and len(message) <= 200


@pytest.mark.parametrize("rule", [
    "1); while(true){} (1",
    "1);\nwhile(true){}\n(1",
    "1); res = 5; (1",
    "x) || (y",
    "1)}); (function(){ while(true){} })(); ((function(){ return (1",
    "1 /* */); while(true){} (1",
])
def test_break_out_attempts_rejected(rule: str) -> None:
    message = rule_syntax_error(rule)
    assert message and "SyntaxError" in message
    started = time.monotonic()
    assert evaluate_rule(rule, JSON_RES) is False
    assert time.monotonic() - started < 3


def test_length_limit() -> None:
    ok = "1 || " + "1" * (MAX_RULE_LENGTH - 5)
    assert len(ok) == MAX_RULE_LENGTH and rule_syntax_error(ok) is None
    too_long = ok + "1"
    message = rule_syntax_error(too_long)
    assert message and str(MAX_RULE_LENGTH) in message
    assert evaluate_rule(too_long, JSON_RES) is False


def test_nul_and_non_string_rejected() -> None:
    assert rule_syntax_error("1\0); while(true){} (1")
    assert rule_syntax_error(None)  # type: ignore[arg-type]
    assert evaluate_rule(None, JSON_RES) is False  # type: ignore[arg-type]


# -- evaluation -----------------------------------------------------------------------------------------


def test_json_body_is_parsed() -> None:
    assert evaluate_rule("res.body.ok === true", JSON_RES) is True
    assert evaluate_rule("res.body.ok === true", {**JSON_RES, "body": '{"ok": false}'}) is False
    assert evaluate_rule("res.body.data.items.length > 2", JSON_RES) is True


def test_text_body_stays_a_string() -> None:
    rule = 'typeof res.body === "string" && res.body.includes("welcome")'
    assert evaluate_rule(rule, HTML_RES) is True
    assert evaluate_rule(rule, {**HTML_RES, "body": "please sign in"}) is False


def test_status_and_lowercase_headers() -> None:
    rule = 'res.status === 200 && res.headers["content-type"].startsWith("application/json")'
    assert evaluate_rule(rule, JSON_RES) is True
    assert evaluate_rule(rule, {**JSON_RES, "status": 401}) is False
    mixed = {**JSON_RES, "headers": {"Content-Type": "application/json"}}
    assert evaluate_rule(rule, mixed) is True


def test_optional_chaining_and_nullish() -> None:
    assert evaluate_rule("res.body?.missing?.deeper === undefined", JSON_RES) is True
    assert evaluate_rule("res.body?.missing?.deeper ?? false", JSON_RES) is False


def test_truthiness_is_javascripts() -> None:
    assert evaluate_rule("({})", JSON_RES) is True  # an object comes back as quickjs.Object in Python
    assert evaluate_rule("[]", JSON_RES) is True
    assert evaluate_rule('"0"', JSON_RES) is True
    for falsy in ("0", '""', "null", "undefined", "NaN", "res.body.nope"):
        assert evaluate_rule(falsy, JSON_RES) is False, falsy


def test_a_rule_that_throws_is_false() -> None:
    ok, reason = evaluate("res.body.missing.deeper", JSON_RES)
    assert ok is False and "TypeError" in reason


def test_thrown_values_never_reach_the_reason() -> None:
    res = {**JSON_RES, "body": json.dumps({"token": "tok-SECRET-4242"})}
    for rule in ("(() => { throw new Error(res.body.token) })()", "(() => { throw res.body.token })()"):
        ok, reason = evaluate(rule, res)
        assert ok is False
        assert "tok-SECRET-4242" not in reason


def test_res_is_frozen() -> None:
    assert evaluate_rule("(res.status = 500, res.status === 200)", JSON_RES) is True
    assert evaluate_rule("(res.body.ok = false, res.body.ok === true)", JSON_RES) is True
    assert evaluate_rule("Object.isFrozen(res) && Object.isFrozen(res.body.data.items)", JSON_RES) is True


def test_no_host_globals() -> None:
    for name in ("require", "process", "fetch", "std", "os", "quickjs", "module", "XMLHttpRequest"):
        assert evaluate_rule(f'typeof {name} === "undefined"', JSON_RES) is True, name
        assert evaluate_rule(f'typeof globalThis.{name} === "undefined"', JSON_RES) is True, name
    escape = ('(function () { return this })().process === undefined'
              ' && Function("return typeof require")() === "undefined"')
    assert evaluate_rule(escape, JSON_RES) is True


def test_infinite_loop_fails_closed_fast() -> None:
    started = time.monotonic()
    ok, reason = evaluate("(() => { while (true) {} })()", JSON_RES)
    assert ok is False and "timed out" in reason
    assert time.monotonic() - started < 3


def test_native_runaway_is_killed() -> None:
    """A backtracking regex runs in native code that QuickJS's time limit never interrupts."""
    started = time.monotonic()
    ok, reason = evaluate('/^(a+)+$/.test("a".repeat(40) + "b")', JSON_RES)
    assert ok is False and "timed out" in reason
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("rule", [
    "new Array(1e9).fill(1)",
    '(() => { let s = "x"; for (;;) s += s; })()',
    "(() => { const a = []; for (;;) a.push({x: a.length}); })()",
])
def test_memory_bomb_fails_closed(rule: str) -> None:
    started = time.monotonic()
    assert evaluate_rule(rule, JSON_RES) is False
    assert time.monotonic() - started < 3


def test_deep_recursion_fails_closed() -> None:
    assert evaluate_rule("(function f() { return f() })()", JSON_RES) is False


def test_deeply_nested_json_body() -> None:
    body = "[" * 100_000 + "]" * 100_000
    assert evaluate_rule("true", {"status": 200, "body": body, "headers": {}}) in (True, False)


def test_unserialisable_res_never_raises() -> None:
    assert evaluate_rule("true", {"status": 200, "body": object(), "headers": {}}) is False


def test_in_thread_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a child interpreter (a frozen build) the rule runs in a thread, still bounded."""
    monkeypatch.setattr(jsrule, "_child_command", lambda: None)
    assert evaluate_rule("res.body.ok === true", JSON_RES) is True
    started = time.monotonic()
    assert evaluate_rule("(() => { while (true) {} })()", JSON_RES) is False
    assert time.monotonic() - started < 3


def test_child_that_cannot_start_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(jsrule, "_child_command", lambda: [sys.executable, "-I", "-S", "-c", "raise SystemExit(1)"])
    assert evaluate_rule("res.body.ok === true", JSON_RES) is True
    assert evaluate_rule("res.body.ok === false", JSON_RES) is False
