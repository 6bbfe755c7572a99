"""Bad files: a config, credential or key file that is truncated, empty, garbage, another user's, a symbolic
link to elsewhere, of the wrong mode, a FIFO or a folder. Each gives a clear error that names the file and
the fix, exits 1 (SPEC: general error), leaves every other provider working where it can (the key seals them
all), and the fix the hint gives works.

Root bypasses permission checks, so ownership is tested explicitly (files chowned to another uid); one test
runs sig as an unprivileged user (setpriv) where the kernel refuses the read too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.sigproc import Sig

TOKEN_A = "tok-BADFILE-aaaa1111"
TOKEN_B = "tok-BADFILE-bbbb2222"
NOBODY = 65534  # another user: tests run as root, which the kernel lets read anything
OTHER_UID = 12345  # a uid with no account: "another user" for the unprivileged run


@pytest.fixture(scope="module")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SIG_HOME with providers a and b logged in (api tokens), copied for each case."""
    root = tmp_path_factory.mktemp("bad-files-base")
    sig = Sig(root / "home" / ".sig", root / "home")
    sig("init", "--yes", "--remote", check=0)
    sig("login", "https://a.example.com", "--as", "a", "--token-stdin", input=TOKEN_A, check=0)
    sig("login", "https://b.example.com", "--as", "b", "--token-stdin", input=TOKEN_B, check=0)
    yield sig.home
    sig.close()


@pytest.fixture
def sig(base_home: Path, tmp_path: Path) -> Iterator[Sig]:
    home = tmp_path / "home" / ".sig"
    shutil.copytree(base_home, home, symlinks=True)
    shutil.rmtree(home / "cache", ignore_errors=True)
    runner = Sig(home, tmp_path / "home")
    try:
        yield runner
    finally:
        runner.close()
        for path in (tmp_path / "home").rglob("*"):  # let pytest remove what was chowned or chmodded
            if not path.is_symlink():
                os.chown(path, 0, 0)
                path.chmod(0o700 if path.is_dir() else 0o600)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.chmod(0o600)
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.chmod(0o600)
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.chmod(0o600)
    path.write_bytes(bytes(range(256)) * 3)


def _other_user(path: Path) -> None:
    os.chown(path, NOBODY, NOBODY)


def _symlink_elsewhere(path: Path) -> None:
    outside = path.parent.parent.parent / f"elsewhere-{path.name}"
    shutil.move(path, outside)
    path.symlink_to(outside)


def _writable_by_all(path: Path) -> None:
    path.chmod(0o666)


def _readable_by_all(path: Path) -> None:
    path.chmod(0o644)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir(mode=0o700)


@dataclass
class Case:
    name: str
    damage: Callable[[Path], None]
    says: tuple[str, ...]  # in the error message
    hint: str  # in the Hint: line


def _login_a(sig: Sig, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.is_symlink() or (path.exists() and not path.is_file()):
        path.unlink()
    sig("login", "a", "--token-stdin", input=TOKEN_A, check=0)


def _chown_back(sig: Sig, path: Path) -> None:
    os.chown(path, 0, 0)


def _chmod(mode: int) -> Callable[[Sig, Path], None]:
    return lambda sig, path: path.chmod(mode)


def _link_to_file(sig: Sig, path: Path) -> None:
    target = path.resolve()
    path.unlink()
    shutil.move(target, path)


CREDENTIAL_CASES = [
    (Case("truncated", _truncate, ("damaged",), "sig login a"), _login_a),
    (Case("empty", _empty, ("damaged",), "sig login a"), _login_a),
    (Case("garbage", _garbage, ("damaged",), "sig login a"), _login_a),
    (Case("another user's", _other_user, ("belongs to another user (nobody, uid 65534)",), "chown root"),
     _chown_back),
    (Case("symlink to elsewhere", _symlink_elsewhere, ("symbolic link",), "replace the link"), _link_to_file),
    (Case("mode 0666", _writable_by_all, ("can be changed by other users (mode 0666)",), "chmod 600"),
     _chmod(0o600)),
    (Case("mode 0644", _readable_by_all, ("can be read by other users (mode 0644)",), "chmod 600"), _chmod(0o600)),
    (Case("a FIFO", _fifo, ("not a regular file",), "sig login a"), _login_a),
    (Case("a folder", _folder, ("not a regular file",), "sig login a"), _login_a),
]


@pytest.mark.parametrize(("case", "fix"), CREDENTIAL_CASES, ids=[c.name for c, _ in CREDENTIAL_CASES])
def test_bad_credential_file(sig: Sig, case: Case, fix: Callable[[Sig, Path], None]) -> None:
    path = sig.home / "credentials" / "a.json"
    case.damage(path)
    r = sig("get", "a", check=1, timeout=20)  # a FIFO must not hang sig
    _assert_clear(r.err, str(path), case)
    err = json.loads(sig("get", "a", "--format", "json", check=1).err)["error"]
    assert err["code"] == "STORAGE_ERROR" and str(path) in err["message"] and err["hint"]
    # every other provider still works
    assert sig("get", "b", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {TOKEN_B}"
    run = sig("run", "--", "sh", "-c", "echo ${SIG_B_TOKEN:+b-present} ${SIG_A_TOKEN:+a-present}", check=0)
    assert run.out.split() == ["b-present"]  # a is skipped
    status = {s["id"]: s for s in sig("status", "--format", "json", check=0).json()}
    assert status["b"]["valid"] is True and str(path) in status["a"]["error"]
    # the fix the hint gives works
    fix(sig, path)
    assert sig("get", "a", "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {TOKEN_A}"
    sig.assert_no_secret(TOKEN_A, TOKEN_B)


def _restore_key(sig: Sig, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    shutil.copy2(sig.home.parent / "key-backup", path)
    path.chmod(0o400)


KEY_CASES = [
    (Case("truncated", _truncate, ("is damaged",), "restore the key"), _restore_key),
    (Case("empty", _empty, ("is damaged (it holds 0 bytes, expected 32)",), "restore the key"), _restore_key),
    (Case("garbage", _garbage, ("is damaged (not valid base64)",), "restore the key"), _restore_key),
    (Case("another user's", _other_user, ("belongs to another user (nobody, uid 65534)",), "chown root"),
     _chown_back),
    (Case("symlink to elsewhere", _symlink_elsewhere, ("symbolic link",), "replace the link"), _link_to_file),
    (Case("mode 0666", _writable_by_all, ("can be changed by other users (mode 0666)",), "chmod 400"),
     _chmod(0o400)),
    (Case("mode 0644", _readable_by_all, ("can be read by other users (mode 0644)",), "chmod 400"), _chmod(0o400)),
    (Case("a FIFO", _fifo, ("not a regular file",), "restore your key"), _restore_key),
    (Case("a folder", _folder, ("not a regular file",), "restore your key"), _restore_key),
]


@pytest.mark.parametrize(("case", "fix"), KEY_CASES, ids=[c.name for c, _ in KEY_CASES])
def test_bad_key_file(sig: Sig, case: Case, fix: Callable[[Sig, Path], None]) -> None:
    path = sig.home / "encryption.key"
    shutil.copy2(path, sig.home.parent / "key-backup")
    before = path.read_bytes()
    case.damage(path)
    for pid in ("a", "b"):  # the key seals every credential: none can be read, each says why
        r = sig("get", pid, check=1, timeout=20)
        _assert_clear(r.err, str(path), case)
    err = json.loads(sig("get", "a", "--format", "json", check=1).err)["error"]
    assert err["code"] == "STORAGE_ERROR" and str(path) in err["message"]
    status = sig("status", "--format", "json", check=0).json()
    assert all(str(path) in s["error"] for s in status)
    # a write never replaces a key it cannot use: the credentials sealed with it would be lost
    r = sig("login", "a", "--token-stdin", input="tok-BADFILE-NEW-3333", check=1)
    assert str(path) in r.err
    fix(sig, path)
    assert path.read_bytes() == before
    for pid, token in (("a", TOKEN_A), ("b", TOKEN_B)):
        assert sig("get", pid, "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {token}"
    sig.assert_no_secret(TOKEN_A, TOKEN_B)


def _cut_in_a_quoted_value(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("execPath: '") + len("execPath: '")])  # cut inside a quoted value


def _symlink_to_others_file(path: Path) -> None:
    outside = path.parent.parent.parent / "others-config.yaml"
    shutil.move(path, outside)
    os.chown(outside, NOBODY, NOBODY)
    path.symlink_to(outside)


def _dangling_symlink(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "nowhere.yaml")


def _restore_config(sig: Sig, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    shutil.copy2(sig.home.parent / "config-backup", path)


CONFIG_CASES = [
    (Case("truncated", _cut_in_a_quoted_value, ("config.yaml",), "fix"), _restore_config),
    (Case("empty", _empty, ("is empty",), "sig init --force"), _restore_config),
    (Case("garbage", _garbage, ("not text",), "sig init --force"), _restore_config),
    (Case("another user's", _other_user, ("belongs to another user (nobody, uid 65534)",), "chown root"),
     _chown_back),
    (Case("symlink to another user's file", _symlink_to_others_file, ("belongs to another user",), "chown root"),
     _restore_config),
    (Case("dangling symlink", _dangling_symlink, ("cannot read",), "check"), _restore_config),
    (Case("mode 0666", _writable_by_all, ("can be changed by other users (mode 0666)",), "chmod 600"),
     _chmod(0o600)),
    (Case("a FIFO", _fifo, ("not a regular file",), "sig init"), _restore_config),
    (Case("a folder", _folder, ("not a regular file",), "sig init"), _restore_config),
]


@pytest.mark.parametrize(("case", "fix"), CONFIG_CASES, ids=[c.name for c, _ in CONFIG_CASES])
def test_bad_config_file(sig: Sig, case: Case, fix: Callable[[Sig, Path], None]) -> None:
    path = sig.home / "config.yaml"
    shutil.copy2(path, sig.home.parent / "config-backup")
    sig("status", check=0)  # a config cache exists: it must not hide the damage
    case.damage(path)
    for pid in ("a", "b"):  # the config names every provider: none can be used, each says why
        r = sig("get", pid, check=1, timeout=20)
        _assert_clear(r.err, str(path), case)
    err = json.loads(sig("get", "a", "--format", "json", check=1).err)["error"]
    assert err["code"] == "CONFIG_ERROR" and str(path) in err["message"]
    fix(sig, path)
    for pid, token in (("a", TOKEN_A), ("b", TOKEN_B)):
        assert sig("get", pid, "--format", "value", "--no-redaction", check=0).out.strip() == f"Bearer {token}"


def test_config_readable_by_others_or_linked_to_your_own_file_is_fine(sig: Sig) -> None:
    """Only what others could change is refused: a 0644 config (dotfiles) or a link to a file of yours
    (a dotfile manager's) works; sig's own edits then refuse to replace the link, saying so."""
    path = sig.home / "config.yaml"
    path.chmod(0o644)
    sig("get", "a", check=0)
    mine = sig.home.parent / "dotfiles-config.yaml"
    shutil.move(path, mine)
    path.symlink_to(mine)
    sig("get", "a", check=0)
    r = sig("login", "https://c.example.com", "--as", "c", "--token-stdin", input="tok-BADFILE-cccc", check=1)
    assert "symbolic link" in r.err and str(path) in r.err
    assert sig("status", "c", check=2).code == 2  # nothing half-done: the failed login left no provider


def test_a_cache_written_by_someone_else_is_ignored(sig: Sig) -> None:
    sig("status", check=0)
    cache = sig.home / "cache" / "config.json"
    planted = json.loads(cache.read_text())
    planted["config"]["providers"]["a"]["domains"] = ["evil.example.net"]
    cache.write_text(json.dumps(planted))
    for owner, mode in ((NOBODY, 0o600), (0, 0o666)):
        os.chown(cache, owner, owner)
        cache.chmod(mode)
        r = sig("get", "https://evil.example.net/", check=2)  # the planted domain is not believed
        assert "no provider matches" in r.err
        assert sig("get", "https://a.example.com/", check=0).json()["provider"] == "a"


def _assert_clear(err: str, path: str, case: Case) -> None:
    assert "Traceback" not in err and "unexpected internal error" not in err, err
    assert path in err, err
    message, _, hint = err.partition("Hint:")
    for words in case.says:
        assert words in message, f"{case.name}: {words!r} not in {message!r}"
    assert case.hint in hint, f"{case.name}: {case.hint!r} not in hint {hint!r}"


# -- as an unprivileged user --------------------------------------------------------------------------


def _unprivileged_runner() -> tuple[list[str], str] | None:
    """argv prefix running sig as `nobody` (setpriv + a system Python of our version), and the path to
    put on PYTHONPATH; None when that cannot work here (the test Python may sit under root's home)."""
    import sigcli

    python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(python, os.X_OK):
        return None
    site = str(Path(sigcli.__file__).resolve().parents[1])
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python, "-c",
            "import sys; sys.argv[0] = 'sig'; from sigcli.__main__ import main; main()"]
    probe = subprocess.run([*argv, "--version"], env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin"},
                           capture_output=True, timeout=30)
    return (argv, site) if probe.returncode == 0 else None


def test_another_users_file_as_an_unprivileged_user() -> None:
    runner = _unprivileged_runner()
    if runner is None:
        pytest.skip("cannot run sig as an unprivileged user here (needs root, setpriv and a system Python "
                    f"{sys.version_info[0]}.{sys.version_info[1]} that can import the installed sig)")
    argv, site = runner
    top = Path(tempfile.mkdtemp(prefix="sig-nobody-"))  # not under root's 0700 pytest folder
    try:
        os.chown(top, NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(top), "SIG_HOME": str(top / ".sig"), "PYTHONPATH": site,
               "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}

        def sig(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*argv, *args], env=env, input=input, capture_output=True, text=True,
                                  timeout=60, stdin=None if input is not None else subprocess.DEVNULL)

        assert sig("init", "--yes", "--remote").returncode == 0
        assert sig("login", "https://a.example.com", "--as", "a", "--token-stdin", input=TOKEN_A).returncode == 0
        assert sig("login", "https://b.example.com", "--as", "b", "--token-stdin", input=TOKEN_B).returncode == 0
        path = top / ".sig" / "credentials" / "a.json"
        os.chown(path, OTHER_UID, OTHER_UID)  # 0600 and someone else's: the kernel refuses the read
        r = sig("get", "a")
        assert r.returncode == 1
        assert str(path) in r.stderr and "belongs to another user (uid 12345)" in r.stderr
        assert "chown nobody" in r.stderr and "Traceback" not in r.stderr
        path.chmod(0o644)  # readable now, but still another user's: sig refuses it
        r = sig("get", "a")
        assert r.returncode == 1 and "does not trust" in r.stderr and str(path) in r.stderr
        r = sig("get", "b", "--format", "value", "--no-redaction")
        assert r.returncode == 0 and r.stdout.strip() == f"Bearer {TOKEN_B}"
        assert TOKEN_A not in r.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)
