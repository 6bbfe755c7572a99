"""`printable`: control characters shown, never obeyed (issue 25, item 4)."""

from __future__ import annotations

import pytest

from sigcli.core.text import printable


def test_controls_are_shown_escaped() -> None:
    assert printable("a\x1b]0;t\x07b\x1b[2K\rc") == "a\\x1b]0;t\\x07b\\x1b[2K\\x0dc"
    assert printable("\x00\x7f\x9b\x85") == "\\x00\\x7f\\x9b\\x85"  # NUL, DEL, CSI and NEL (C1)
    assert printable("pay\u202eflow\u2066x\u2069") == "pay\\u202eflow\\u2066x\\u2069"  # bidi overrides/isolates


def test_newline_and_tab_kept_unless_one_line() -> None:
    assert printable("a\nb\tc") == "a\nb\tc"
    assert printable("a\nb\tc", one_line=True) == "a\\x0ab\\x09c"


@pytest.mark.parametrize("text", ["plain ascii", "héllo wörld ✓", "日本語", "back\\slash \\x1b", ""])
def test_ordinary_text_unchanged(text: str) -> None:
    assert printable(text) == text


def test_idempotent() -> None:
    once = printable("\x1b[31mred\r\n")
    assert printable(once) == once


def test_proxy_log_line_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from sigcli.proxy.serve import _log

    _log("GET https://h/\x1b]0;x\x07 -> 502 (\r\nforged line)")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err
    assert err.count("\n") == 1 and "forged line" in err
