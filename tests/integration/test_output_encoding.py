"""Output under a terminal encoding that is not Unicode (`PYTHONIOENCODING=ascii`, a plain C locale): every
command with table or plain output works, sig's glyphs turn into ASCII, data stays exact (JSON and YAML
read back to the same text), and nothing dies with UnicodeEncodeError."""

from __future__ import annotations

import json

import pytest

from harness.sigproc import Sig

NAME = "Zoë — prod ✓"
# Two ways a machine ends up with an ASCII stdout: the variable, and a C locale with Python's UTF-8 mode
# and locale coercion switched off (as on a minimal system where C.UTF-8 is missing).
ASCII_ENVS = {
    "PYTHONIOENCODING=ascii": {"PYTHONIOENCODING": "ascii"},
    "LANG=C": {"PYTHONIOENCODING": None, "LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0",
               "PYTHONCOERCECLOCALE": "0"},
}


@pytest.fixture
def home(sig_init: Sig) -> Sig:
    sig_init("login", "https://api.example.com", "--token-stdin", "--as", "api", input="tok-ENC-000111", check=0)
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("    name: api.example.com\n", f'    name: "{NAME}"\n', 1),
                   encoding="utf-8")
    sig_init("watch", "add", "api", check=0)
    sig_init("remote", "add", "office", "ssh://deploy@127.0.0.1:1/srv/büro", check=0)
    return sig_init


def _ascii_run(sig: Sig, env_name: str, *args: str, check: int | None = 0) -> tuple[str, str]:
    r = sig(*args, env=ASCII_ENVS[env_name], check=check)
    for stream in (r.out, r.err):
        assert "UnicodeEncodeError" not in stream and "unexpected internal error" not in stream, r.err
        assert stream.isascii(), f"sig {args} wrote non-ASCII under {env_name}: {stream!r}"
    return r.out, r.err


@pytest.mark.parametrize("env_name", list(ASCII_ENVS))
def test_tables_and_plain_output_fall_back_to_ascii(home: Sig, env_name: str) -> None:
    out, _ = _ascii_run(home, env_name, "status", "--format", "table")
    row = next(line for line in out.splitlines() if line.startswith("api "))
    assert " ok " in row  # the valid mark, and the watch column
    out, _ = _ascii_run(home, env_name, "status", "api", "--format", "table")
    assert " ok " in out
    out, _ = _ascii_run(home, env_name, "status", "--format", "plain")
    assert "name: Zo\\u00eb -- prod ok" in out  # sig's own glyphs in ASCII, the rest escaped visibly
    out, _ = _ascii_run(home, env_name, "providers", "--format", "table")
    assert "Zo\\u00eb -- prod ok" in out
    header, rule = out.splitlines()[:2]
    assert len(header.split()) == len(rule.split())  # widths measured on what is printed
    _ascii_run(home, env_name, "providers", "--format", "plain")
    _ascii_run(home, env_name, "providers", "--presets", "--format", "table")
    _ascii_run(home, env_name, "watch", "list", "--format", "table")
    out, _ = _ascii_run(home, env_name, "remote", "list", "--format", "table")
    assert "/srv/b\\u00fcro" in out


@pytest.mark.parametrize("env_name", list(ASCII_ENVS))
def test_data_formats_stay_exact(home: Sig, env_name: str) -> None:
    out, _ = _ascii_run(home, env_name, "status", "--format", "json")
    assert json.loads(out)[0]["name"] == NAME
    out, _ = _ascii_run(home, env_name, "providers", "--format", "json")
    assert json.loads(out)[0]["name"] == NAME
    from ruamel.yaml import YAML

    out, _ = _ascii_run(home, env_name, "providers", "--format", "yaml")
    assert YAML(typ="safe").load(out)[0]["name"] == NAME
    _ascii_run(home, env_name, "status", "--format", "env")
    _ascii_run(home, env_name, "get", "api")


@pytest.mark.parametrize("env_name", list(ASCII_ENVS))
def test_help_doctor_and_messages(home: Sig, env_name: str) -> None:
    out, _ = _ascii_run(home, env_name, "--help")
    assert "sig -- log in once" in out and "proxy >= request" in out
    for command in ("run", "login", "status", "config", "request"):
        _ascii_run(home, env_name, command, "--help")
    out, _ = _ascii_run(home, env_name, "doctor", check=None)
    assert "ok Python" in out and "Config is valid" in out
    # errors quoting the user's non-ASCII input, on stderr
    _, err = _ascii_run(home, env_name, "get", "zoë-api", check=2)
    assert 'no provider matches "zo\\u00eb-api"' in err
    _, err = _ascii_run(home, env_name, "rename", "api", "api-2", check=0)
    assert "->" in err  # "Renamed "api" → "api-2"." with the arrow in ASCII


def test_prompt_answers_and_arguments_are_read_as_utf8_in_a_c_locale(sig_init: Sig) -> None:
    env = ASCII_ENVS["LANG=C"]
    r = sig_init("login", "https://git.example.com", "--username", "jürgen", "--as", "git", input="pässwörd-42\n",
                 env=env, check=0)
    assert "UnicodeDecodeError" not in r.err
    values = sig_init("run", "git", "--no-redaction", "--", "sh", "-c", 'printf "%s|%s" "$SIG_GIT_USERNAME" '
                      '"$SIG_GIT_PASSWORD"', check=0).out
    assert values == "jürgen|pässwörd-42"
