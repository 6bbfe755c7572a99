"""store/audit.py: JSON Lines with the original's field names and order."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from sigcli.store.audit import record

ORDER = ["timestamp", "action", "status", "provider", "metadata"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def _in_canonical_order(keys: list[str]) -> bool:
    positions = [ORDER.index(k) for k in keys]
    return positions == sorted(positions)


def test_record_fields_order_and_mode(tmp_path: Path) -> None:
    log = tmp_path / "home" / "audit.log"
    record(str(log), "login", "success", "local-http", {"strategy": "prompt"})
    record(str(log), "logout", "success", "local-http")
    record(str(log), "init", "success")
    record(str(log), "sync_push", "failure", None, {"remote": "box", "error": "é"})

    lines = _lines(log)
    assert len(lines) == 4
    events = [json.loads(line) for line in lines]
    assert list(events[0]) == ["timestamp", "action", "status", "provider", "metadata"]
    assert list(events[1]) == ["timestamp", "action", "status", "provider"]
    assert list(events[2]) == ["timestamp", "action", "status"]
    assert list(events[3]) == ["timestamp", "action", "status", "metadata"]
    assert events[0]["action"] == "login" and events[0]["status"] == "success"
    assert events[0]["provider"] == "local-http"
    assert events[0]["metadata"] == {"strategy": "prompt"}
    assert events[3]["metadata"]["error"] == "é"
    for event, line in zip(events, lines, strict=True):
        assert TIMESTAMP.match(event["timestamp"])
        # Compact, one object per line, like the original's JSON.stringify(event).
        assert line == json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_record_appends_to_an_existing_upstream_log(tmp_path: Path, fixtures_dir: Path) -> None:
    log = tmp_path / "audit.log"
    upstream = (fixtures_dir / "sig-home" / ".sig" / "audit.log").read_bytes()
    log.write_bytes(upstream)
    record(str(log), "login", "success", "x")
    raw = log.read_bytes()
    assert raw.startswith(upstream)
    lines = _lines(log)
    assert len(lines) == upstream.count(b"\n") + 1
    assert json.loads(lines[-1])["provider"] == "x"


@pytest.mark.parametrize("name", ["sig-home/.sig/audit.log", "audit.after-all.log"])
def test_upstream_logs_use_the_same_field_order(fixtures_dir: Path, name: str) -> None:
    for line in _lines(fixtures_dir / name):
        event = json.loads(line)
        keys = list(event)
        assert keys[:3] == ["timestamp", "action", "status"]
        assert set(keys) <= set(ORDER)
        assert _in_canonical_order(keys)
        assert TIMESTAMP.match(event["timestamp"])


def test_record_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    record(str(blocker / "audit.log"), "login", "success")  # parent is a file: silently skipped
    link = tmp_path / "audit.log"
    link.symlink_to(tmp_path / "elsewhere.log")
    record(str(link), "login", "success")  # O_NOFOLLOW: a symlinked log is not written through
    assert not (tmp_path / "elsewhere.log").exists()
