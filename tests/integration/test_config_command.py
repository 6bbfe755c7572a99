"""`sig config path|get|set|unset`: settings without hand-edited YAML, checked by the config's own rules,
comments kept, never a secret printed, and destination fields guarded under an AI agent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.sigproc import Result, Sig
from harness.terminal import at_terminal

PROMPT = b"Allow it?"


@pytest.fixture
def api(sig_init: Sig) -> Sig:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input="tok-CONFIG-0001", check=0)
    return sig_init


def _audit(sig: Sig) -> list[dict]:
    path = sig.home / "audit.log"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in events if e["action"] == "config_set"]


def test_path_and_get_with_defaults(api: Sig) -> None:
    assert api("config", "path", check=0).out.strip() == str(api.home / "config.yaml")
    assert api("config", "get", "browser.headlessTimeout", check=0).out == "20000\n"  # the schema's default
    assert api("config", "get", "mode", check=0).out == "browser\n"
    assert api("config", "get", "providers.api.domains", check=0).out == "- api.example.com\n"
    entry = api("config", "get", "providers.api", "--json", check=0).json()
    assert entry["strategy"] == "api-token" and entry["domains"] == ["api.example.com"]
    r = api("config", "get", "providers.api.caFile", check=1)
    assert "providers.api.caFile is not set" in r.err and "sig config set providers.api.caFile" in r.err


def test_set_types_validation_and_comments(api: Sig) -> None:
    cfg = api.home / "config.yaml"
    comments = [line for line in cfg.read_text().splitlines() if line.lstrip().startswith("#")]
    api("config", "set", "providers.api.allowHttp", "true", check=0)
    api("config", "set", "providers.api.ports", "443,8443", check=0)
    api("config", "set", "providers.api.headerPrefix", "123", check=0)  # text as given, not a number
    api("config", "set", "providers.api.env.API_URL", "{token}", check=0)  # a template, not a YAML map
    api("config", "set", "browser.adapter", "playwright", check=0)
    api("config", "set", "browser.headlessTimeout", "30000", check=0)
    entry = api("config", "get", "providers.api", "--json", check=0).json()
    assert entry["allowHttp"] is True and entry["ports"] == [443, 8443]
    assert entry["headerPrefix"] == "123" and entry["env"] == {"API_URL": "{token}"}
    assert api("config", "get", "browser.adapter", check=0).out == "playwright\n"
    assert api("config", "get", "browser.headlessTimeout", "--json", check=0).json() == 30000
    text = cfg.read_text()
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == comments
    # the added browser key sits inside browser:, above the blank line that opens the next section
    browser = text[text.index("browser:"):text.index("storage:")]
    assert "adapter: playwright" in browser and browser.rstrip("\n").endswith("adapter: playwright")
    # sig reads what was written
    assert api("status", "api", check=0).json()["valid"] is True
    # refused values change nothing
    before = cfg.read_bytes()
    r = api("config", "set", "browser.adapter", "selenium", check=1)
    assert "not changed" in r.err and "browser.adapter must be cdp or playwright" in r.err
    r = api("config", "set", "providers.api.domains", "https://api.example.com/x", check=1)
    assert "is not a host name" in r.err
    r = api("config", "set", "providers.api.allowHttp", "maybe", check=1)
    assert "true or false" in r.err
    r = api("config", "set", "browser.visibleTimeout", "2 minutes", check=1)
    assert "takes a number" in r.err
    r = api("config", "unset", "providers.api.domains", check=1)
    assert 'missing required field "domains"' in r.err
    assert cfg.read_bytes() == before
    api("config", "unset", "providers.api.allowHttp", check=0)
    assert "allowHttp" not in cfg.read_text()


def test_unknown_names_and_structures(api: Sig) -> None:
    r = api("config", "set", "providers.api.allowHtp", "true", check=1)
    assert '"providers.api.allowHtp" is not a setting' in r.err and "did you mean providers.api.allowHttp?" in r.err
    r = api("config", "get", "browser.headlesTimeout", check=1)
    assert "did you mean browser.headlessTimeout?" in r.err
    r = api("config", "set", "providers.apx.allowHttp", "true", check=2)
    assert 'no provider "apx"' in r.err and 'did you mean "api"?' in r.err
    r = api("config", "set", "providers.api.apply", "x", check=1)
    assert "structure" in r.err
    r = api("config", "set", "remotes.prod.host", "x", check=1)
    assert "sig remote add" in r.err
    r = api("config", "set", "mode", check=1)
    assert "a setting name and a value" in r.err
    # a value that starts with "-" goes after --
    api("config", "set", "providers.api.headerPrefix", "--", "-x-", check=0)
    assert api("config", "get", "providers.api.headerPrefix", check=0).out == "-x-\n"


def test_dotted_provider_ids(sig_init: Sig) -> None:
    sig_init("login", "https://svc.example.com", "--token-stdin", "--as", "svc.v2", input="tok-CONFIG-02", check=0)
    sig_init("config", "set", "providers.svc.v2.caFile", "/etc/ssl/svc.pem", check=0)
    assert sig_init("config", "get", "providers.svc.v2.caFile", check=0).out == "/etc/ssl/svc.pem\n"


def test_get_never_prints_a_secret(api: Sig) -> None:
    cfg = api.home / "config.yaml"
    cfg.write_text(cfg.read_text() + """  svc:
    domains: [svc.example.com]
    strategy: oauth2
    networkProxy: http://bob:proxy-PASS-123@127.0.0.1:3128
    oauth2:
      tokenUrl: https://svc.example.com/token
      clientId: ${SVC_CLIENT_ID}
      clientSecret: clear-SECRET-456
""")
    out = api("config", "get", check=0).out + api("config", "get", "providers.svc", "--json", check=0).out
    out += api("config", "get", "providers.svc.oauth2.clientSecret", check=0).out
    out += api("config", "get", "providers.svc.networkProxy", check=0).out
    assert "clear-SECRET-456" not in out and "proxy-PASS-123" not in out
    assert "${SVC_CLIENT_ID}" in out  # references stay literal
    assert "http://bob:****@127.0.0.1:3128" in out


# -- the agent guard -------------------------------------------------------------------------------------


def _no_tty(sig: Sig, *args: str) -> Result:
    """Under an agent marker, in a new session: no controlling terminal, as an agent's tool runs sig."""
    proc = sig.popen(*args, env={"CLAUDECODE": "1"}, start_new_session=True)
    return sig.finish(proc, input="y\n")


def test_agent_cannot_change_where_a_credential_goes(api: Sig) -> None:
    cfg = api.home / "config.yaml"
    before = cfg.read_bytes()
    for args in (("providers.api.domains", "evil.example.net"), ("providers.api.allowHttp", "true"),
                 ("providers.api.caFile", "/tmp/evil.pem"), ("providers.api.networkProxy", "http://127.0.0.1:1"),
                 ("providers.api.ports", "8080"), ("providers.api.entryUrl", "https://evil.example.net/"),
                 ("browser.execPath", "/tmp/evil-browser")):
        r = _no_tty(api, "config", "set", *args)
        assert r.code == 1, r.err
        assert "decides where a credential may go" in r.err and "no person could be asked" in r.err
    r = _no_tty(api, "config", "unset", "providers.api.domains")
    assert r.code == 1 and "decides where a credential may go" in r.err
    assert cfg.read_bytes() == before
    assert _audit(api)[-1]["status"] == "failure"
    # settings that send nothing anywhere need no person
    r = _no_tty(api, "config", "set", "browser.headlessTimeout", "25000")
    assert r.code == 0, r.err
    # no agent: the person typed it
    api("config", "set", "providers.api.allowHttp", "true", check=0)
    assert _audit(api)[-1]["status"] == "success" and _audit(api)[-1]["metadata"]["destination"] is True


def _at_terminal(sig: Sig, argv: list[str], answer: bytes, timeout: float = 30) -> tuple[int, str]:
    """sig under `script` with an agent marker; the question answered like a person (harness/terminal.py)."""
    return at_terminal(sig, argv, PROMPT, answer, env=sig._env({"CLAUDECODE": "1"}), timeout=timeout)


def test_person_at_terminal_decides(api: Sig) -> None:
    code, shown = _at_terminal(api, ["config", "set", "providers.api.domains", "api.example.com,new.example.com"],
                               b"y")
    assert code == 0, shown
    assert "providers.api.domains: [api.example.com] -> [api.example.com, new.example.com]" in shown
    assert "CLAUDECODE" in shown
    assert api("config", "get", "providers.api.domains", "--json", check=0).json() == \
        ["api.example.com", "new.example.com"]
    assert _audit(api)[-1]["metadata"]["approvedBy"] == "terminal"
    code, shown = _at_terminal(api, ["config", "set", "providers.api.allowHttp", "true"], b"n")
    assert code == 1 and "said no" in shown
    assert "allowHttp" not in (api.home / "config.yaml").read_text()


def test_completion_offers_settings(api: Sig, tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = tmp_path / "sig.bash"
    script.write_text(api("completion", "bash", check=0).out)

    def complete(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        proc = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1};"
                               ' _sig_completions; echo "${COMPREPLY[*]}"'], env=api.env, capture_output=True,
                              text=True, timeout=60)
        return proc.stdout.split()

    assert complete("sig", "config", "") == ["path", "get", "set", "unset"]
    assert "browser.adapter" in complete("sig", "config", "set", "br")
    assert complete("sig", "config", "get", "providers.") == ["providers.api."]
