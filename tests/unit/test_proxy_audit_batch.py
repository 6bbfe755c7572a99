"""proxy/audit_events.py and store/audit.BatchAppender: what a proxy_request event shows, and batched appends that
stay whole lines next to other processes' appends."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from sigcli.proxy.audit_events import InjectionAudit, audit_path
from sigcli.store.audit import BatchAppender, event_line, record


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (b"/", "/"),
        (b"/a/b", "/a/b"),
        (b"/search?q=secret&page=2", "/search?q=&page="),
        (b"/x?token=abc&&=v&bare&k=", "/x?token=&=&k="),
        (b"/x?", "/x?"),
        (b"/x#frag?q=secret", "/x"),
        (b"/x?a=1#q=secret", "/x?a="),
        (b"*", "*"),
        (b"/p\x1b[2J?k\x07=v", "/p?[2J?k?="),
        (b"/" + b"a" * 300, "/" + "a" * 199 + "…"),
    ],
)
def test_audit_path_keeps_query_keys_only(target: bytes, shown: str) -> None:
    assert audit_path(target) == shown


def _lines(path: Path) -> list[dict]:
    raw = path.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    return [json.loads(line) for line in raw.splitlines()]


def test_injection_event_fields(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    hook = InjectionAudit(str(log), interval=60)
    hook(("jira",), "GET", b"jira.example.com", b"/rest/api?jql=secret", 200)
    hook(("a", "b"), "POST", b"127.0.0.1:8443", b"/x", 503)
    hook.close()
    first, second = _lines(log)
    assert list(first) == ["timestamp", "action", "status", "provider", "metadata"]
    assert first["action"] == "proxy_request" and first["status"] == "success" and first["provider"] == "jira"
    assert first["metadata"] == {"host": "jira.example.com", "method": "GET", "path": "/rest/api?jql=",
                                 "statusCode": 200}
    assert second["status"] == "failure" and second["provider"] == "a"
    assert second["metadata"]["providers"] == ["a", "b"]
    assert "secret" not in log.read_text()
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_batch_written_when_full_without_waiting_for_the_interval(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    batch = BatchAppender(str(log), lambda i: event_line(0, "x", "success", None, {"i": i}),
                          interval=600, max_events=50)
    try:
        for i in range(50):
            batch.add(i)
        deadline = time.monotonic() + 10
        while (not log.exists() or len(log.read_bytes().splitlines()) < 50) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e["metadata"]["i"] for e in _lines(log)] == list(range(50))
        batch.add(50)  # below max_events: waits for the interval (10 minutes) or close()
        time.sleep(0.2)
        assert len(_lines(log)) == 50
    finally:
        batch.close()
    assert [e["metadata"]["i"] for e in _lines(log)] == list(range(51))


def test_a_bad_item_does_not_lose_the_others_and_unwritable_log_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    told: list[str] = []
    batch = BatchAppender(str(log), lambda i: event_line(0, "x", "success", None, {"i": 1 // i}),
                          interval=600, log=told.append)
    for i in (1, 0, 1):
        batch.add(i)
    batch.close()
    assert len(_lines(log)) == 2 and not told
    blocked = tmp_path / "dir-not-file"
    blocked.mkdir()
    batch = BatchAppender(str(blocked), lambda i: b"x\n", interval=600, log=told.append)
    batch.add(1)
    batch.close()
    assert told and "could not append 1 event" in told[0]


def _writer(path: str, tag: str, n: int) -> None:
    pad = "p" * 400  # long lines: a torn write would show up as a broken line
    batch = BatchAppender(path, lambda i: event_line(0, "proxy_request", "success", tag, {"i": i, "pad": pad}),
                          interval=0.01, max_events=64)
    for i in range(n):
        batch.add(i)
        if i % 500 == 0:
            record(path, "credential_access", "success", tag, {"i": i})
    batch.close()


def test_batches_from_several_processes_append_whole_lines(tmp_path: Path) -> None:
    log = str(tmp_path / "audit.log")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(log, f"w{k}", 3000)) for k in range(3)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 120
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
    stuck = [proc for proc in procs if proc.is_alive()]
    for proc in stuck:
        proc.kill()
    assert not stuck and [p.exitcode for p in procs] == [0, 0, 0]
    events = _lines(Path(log))  # every line parses: no two writes interleaved inside a line
    for k in range(3):
        mine = [e["metadata"]["i"] for e in events if e["provider"] == f"w{k}" and e["action"] == "proxy_request"]
        assert mine == list(range(3000))
        assert len([e for e in events if e["provider"] == f"w{k}" and e["action"] == "credential_access"]) == 6


def test_queue_is_bounded_and_drops_are_reported(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    told: list[str] = []
    batch = BatchAppender(str(log), lambda i: event_line(0, "x", "success", None, {"i": i}),
                          interval=600, max_events=1000, max_pending=10, log=told.append)
    for i in range(15):
        batch.add(i)
    batch.close()
    assert [e["metadata"]["i"] for e in _lines(log)] == list(range(5, 15))
    assert told == ["audit: 5 event(s) dropped: more were queued than could be written"]


def _generic_line(item: tuple) -> bytes:
    """The same event through the audit log's generic writer: the reference the fast render must equal."""
    from sigcli.proxy.audit_events import ACTION, audit_path
    from sigcli.store.audit import event_line

    when, providers, method, host, target, status = item
    metadata: dict[str, object] = {
        "host": host.decode("ascii", "replace"), "method": method, "path": audit_path(target),
        "statusCode": status,
    }
    if len(providers) > 1:
        metadata["providers"] = list(providers)
    return event_line(int(when * 1000), ACTION, "success" if status < 400 else "failure",
                      providers[0] if providers else None, metadata)


@pytest.mark.parametrize(
    "item",
    [
        (1767225600.0, ("echo",), "GET", b"127.0.0.1:8443", b"/bench?a=1&b=2", 200),
        (1767225600.999, ("a", 'b"q\\'), "POST", b"api.example.com", b"/" + b"x" * 250 + b"?k=v", 503),
        (1767225601.5, (), "HEAD", b"h\xffst", b"/p\x1b?q", 101),
        (1767225659.001, ("jira",), "DELETE", b"[::1]:9000", b"*", 404),
    ],
)
def test_fast_render_matches_the_generic_event_line(item: tuple) -> None:
    from sigcli.proxy.audit_events import _Render

    render = _Render()
    assert render(item) == _generic_line(item)
    assert render(item) == _generic_line(item)  # the cached second gives the same text
    json.loads(render(item))
