"""App-named variables (seed 004's `run -- next dev` with DATABASE_URL): a provider's `env:` map and
`sig run --env NAME=P.key`, redacted like every other injected value."""

from __future__ import annotations

import json
from pathlib import Path

from harness.sigproc import Sig

PASSWORD = "pw-APPENV-7f7f7f"
TOKEN = "tok-APPENV-a1b2c3d4"
DB_URL = f"postgres://app:{PASSWORD}@db.internal:5432/app"


def _setup(sig: Sig, env_block: str) -> None:
    sig("login", "https://db.example.com", "--username", "app", "--password-stdin", "--as", "db",
        input=PASSWORD, check=0)
    sig("login", "https://api.example.com", "--token-stdin", "--as", "api", input=TOKEN, check=0)
    cfg = sig.home / "config.yaml"
    text = cfg.read_text()
    assert "  db:\n" in text
    cfg.write_text(text.replace("  db:\n", "  db:\n" + env_block, 1))


ENV_BLOCK = (
    "    env:\n"
    '      DATABASE_URL: "postgres://{username}:{password}@db.internal:5432/app"\n'
    '      PGUSER: "${username}"\n'
    '      LITERAL: "no placeholder, {not a key}"\n'
)


def test_env_map_sets_app_variables_and_redacts_them(sig_init: Sig) -> None:
    _setup(sig_init, ENV_BLOCK)
    script = (f'test "$DATABASE_URL" = "{DB_URL}" && echo url-ok; echo "$DATABASE_URL"; echo "user=$PGUSER"; '
              'echo "$LITERAL"')
    r = sig_init("run", "db", "--", "sh", "-c", script, check=0)
    lines = r.out.splitlines()
    assert lines[0] == "url-ok"
    assert PASSWORD not in r.out and DB_URL not in r.out
    assert lines[1] == "****"  # the whole composed value is a secret to the redactor
    assert lines[2] == "user=app"  # a user name is not a secret (as in `sig get`)
    assert lines[3] == "no placeholder, {not a key}"
    sig_init.assert_no_secret(PASSWORD, TOKEN)


def test_env_option_takes_a_value_of_any_provider(sig_init: Sig) -> None:
    _setup(sig_init, ENV_BLOCK)
    script = f'test "$API_TOKEN" = "{TOKEN}" && test "$DATABASE_URL" = "{DB_URL}" && echo ok; echo "$API_TOKEN"'
    # api is not named as a provider: --env brings it in.
    r = sig_init("run", "db", "--env", "API_TOKEN=api.token", "--", "sh", "-c", script, check=0)
    assert r.out.splitlines() == ["ok", "****"]
    # With no provider named, every valid one is used; --env wins over an env: map.
    r = sig_init("run", "--env", "DATABASE_URL=api.token", "--", "sh", "-c",
                 f'test "$DATABASE_URL" = "{TOKEN}" && echo overridden', check=0)
    assert r.out.strip() == "overridden"
    sig_init.assert_no_secret(PASSWORD, TOKEN)


def test_env_option_errors(sig_init: Sig) -> None:
    _setup(sig_init, "")
    cases = [
        (["--env", "1BAD=api.token"], 1, "not a valid variable name"),
        (["--env", "SIG_API_X=api.token"], 1, "starts with SIG_"),
        (["--env", "X=api"], 1, "PROVIDER.KEY"),
        (["--env", "X"], 1, "NAME=PROVIDER.KEY"),
        (["--env", "X=nosuch.token"], 2, 'no provider matches "nosuch"'),
        (["--env", "X=api.nokey"], 3, 'has no value "nokey"'),
    ]
    for extra, code, message in cases:
        r = sig_init("run", *extra, "--", "true", check=code)
        assert message in r.err, (extra, r.err)
    r = sig_init("run", "--proxy", "--env", "X=api.token", "--", "true", check=1)
    assert "--env" in r.err


def test_env_map_validation_in_config(sig_init: Sig) -> None:
    _setup(sig_init, '    env:\n      9LIVES: "{token}"\n      SIG_OWN: "{token}"\n      OK_NAME: 3\n')
    r = sig_init("status", check=1)
    assert '"9LIVES" is not a valid variable name' in r.err
    assert '"SIG_OWN" starts with SIG_' in r.err
    assert "env.OK_NAME must be a string template" in r.err


def test_missing_key_in_env_map_warns_and_is_empty(sig_init: Sig) -> None:
    _setup(sig_init, '    env:\n      TOKEN_URL: "https://x/?t={nokey}"\n')
    r = sig_init("run", "db", "--", "sh", "-c", 'echo "[$TOKEN_URL]"', check=0)
    assert r.out.strip() == "[https://x/?t=]"
    assert 'TOKEN_URL (env of "db"): the credential has no value "nokey"' in r.err


def test_mount_file_holds_app_variables(sig_init: Sig, tmp_path: Path) -> None:
    _setup(sig_init, ENV_BLOCK)
    mount = tmp_path / "vars.json"
    script = (f"python3 -c \"import json,sys; d=json.load(open('{mount}')); "
              f"print(d['DATABASE_URL'] == '{DB_URL}', d['PGUSER'])\"")
    r = sig_init("run", "db", "--mount", str(mount), "--mount-format", "json", "--", "sh", "-c", script, check=0)
    assert r.out.strip() == "True app"
    assert not mount.exists()


def test_run_help_and_json_errors_document_env(sig_init: Sig) -> None:
    assert "--env NAME=P.KEY" in sig_init("run", "--help", check=0).out
    r = sig_init("run", "--env", "bad-name=x.y", "--format", "json", "--", "true", check=1)
    assert json.loads(r.err)["error"]["code"] == "USAGE_ERROR"


def test_two_env_maps_setting_one_name(sig_init: Sig) -> None:
    _setup(sig_init, '    env:\n      SHARED: "{password}"\n')
    cfg = sig_init.home / "config.yaml"
    cfg.write_text(cfg.read_text().replace("  api:\n", '  api:\n    env:\n      SHARED: "{token}"\n', 1))
    r = sig_init("run", "db,api", "--", "true", check=1)
    assert 'SHARED is set by the env maps of both "db" and "api"' in r.err and "--env SHARED=" in r.err
    r = sig_init("run", "db,api", "--env", "SHARED=api.token", "--", "sh", "-c",
                 f'test "$SHARED" = "{TOKEN}" && echo chosen', check=0)
    assert r.out.strip() == "chosen"
