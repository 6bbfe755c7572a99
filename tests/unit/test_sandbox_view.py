"""The sandbox's filesystem view, worked out from real folders (tmp_path) and given mount tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sigcli.core.errors import SigError
from sigcli.sandbox.view import Request, View, aliases, build_view, read_mounts, visible


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    for d in (".sig/credentials", ".sig/proxy", ".ssh", ".aws", ".config/gh", "proj/.git/hooks", ".local/bin"):
        (h / d).mkdir(parents=True)
    for f in (".netrc", ".bashrc", ".sig/encryption.key", ".ssh/id_ed25519", "proj/.git/config"):
        (h / f).write_text("x")
    return h


def _request(home: Path, cwd: Path, **kw: object) -> Request:
    sig = [str(home / ".sig"), str(home / ".sig"), str(home / ".sig/credentials")]
    return Request(cwd=str(cwd), home=str(home), sig_paths=sig, **kw)  # type: ignore[arg-type]


def _view(req: Request, **kw: object) -> View:
    """tmp_path lives under /tmp, which the sandbox replaces: here it counts as an ordinary folder."""
    return build_view(req, mounts=[], private=("/nonexistent-private",), **kw)  # type: ignore[arg-type]


def test_sig_home_and_secret_stores_hidden(home: Path) -> None:
    view = _view(_request(home, home / "proj"))
    assert str(home / ".sig") in view.hidden_dirs
    assert str(home / ".sig/credentials") not in view.hidden_dirs  # inside a hidden folder already
    assert {str(home / ".ssh"), str(home / ".aws"), str(home / ".config/gh")} <= set(view.hidden_dirs)
    assert str(home / ".netrc") in view.hidden_files
    assert view.cwd == str(home / "proj") and view.writable == ()
    assert set(view.read_only) == {str(home / "proj/.git/hooks"), str(home / "proj/.git/config")}
    assert view.notes == ()


def test_home_as_working_directory_keeps_startup_files_read_only(home: Path) -> None:
    view = _view(_request(home, home))
    assert {str(home / ".bashrc"), str(home / ".local/bin")} <= set(view.read_only)
    assert str(home / ".ssh/rc") not in view.read_only  # absent: nothing to bind
    assert view.notes and "home folder" in view.notes[0]
    assert str(home / ".sig") in view.hidden_dirs  # under the writable cwd, hidden after it


def test_show_and_hide(home: Path) -> None:
    (home / "proj/.env").write_text("SECRET=1")
    view = _view(_request(home, home / "proj", show=["~/.aws"], hide=[".env", "~/.config"]))
    assert str(home / ".aws") not in view.hidden_dirs
    assert str(home / "proj/.env") in view.hidden_files  # relative to the working directory
    assert str(home / ".config") in view.hidden_dirs and str(home / ".config/gh") not in view.hidden_dirs


def test_sig_data_cannot_be_shown(home: Path) -> None:
    with pytest.raises(SigError) as err:
        build_view(_request(home, home / "proj", show=[str(home / ".sig")]), mounts=[])
    assert "sig's own data" in err.value.message


@pytest.mark.parametrize("where", [".sig", ".sig/credentials", ".ssh"])
def test_working_directory_inside_a_hidden_path_is_refused(home: Path, where: str) -> None:
    with pytest.raises(SigError) as err:
        _view(_request(home, home / where))
    assert "inside" in err.value.message


def test_allow_write_checks(home: Path) -> None:
    with pytest.raises(SigError, match="no such file"):
        _view(_request(home, home / "proj", allow_write=[str(home / "missing")]))
    with pytest.raises(SigError, match="inside sig's own data"):
        _view(_request(home, home / "proj", allow_write=[str(home / ".sig/proxy")]))
    with pytest.raises(SigError, match="everything writable"):
        _view(_request(home, home / "proj", allow_write=["/"]))
    (home / "cache").mkdir()
    view = _view(_request(home, home / "proj", allow_write=["~/cache"]))
    assert view.writable == (str(home / "cache"),)


def test_root_as_working_directory_is_refused(home: Path) -> None:
    with pytest.raises(SigError, match="whole filesystem"):
        build_view(_request(home, Path("/")), mounts=[])


def test_symlink_to_a_hidden_folder_hides_its_target(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere-sig"
    real.mkdir()
    os.rename(home / ".sig", real / "data")
    (home / ".sig").symlink_to(real / "data")
    view = _view(_request(home, home / "proj"))
    assert str(real / "data") in view.hidden_dirs


def test_private_tmp_hides_without_a_mount(tmp_path: Path) -> None:
    """A path under the private /tmp is not in the sandbox at all, unless a bind shows it."""
    view = View(cwd=str(tmp_path / "proj"))
    assert not visible("/tmp/other/.sig", view)
    assert visible(str(tmp_path / "proj/.sig"), view)
    assert visible("/home/u/.sig", view)
    assert not visible("/proc/1/environ", view) and not visible("/run/user/0/bus", view)


def test_needed_paths_under_private_folders_are_bound_in(home: Path, tmp_path: Path) -> None:
    """tmp_path is under /tmp: an interpreter there would be missing inside, so it is bound read-only."""
    python = tmp_path / "venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    view = build_view(_request(home, home / "proj", needed=[str(python)]), mounts=[])
    assert (str(python), str(python)) in view.files
    # and the hidden paths under the private /tmp need no mount (nothing of /tmp shows)
    assert str(home / ".ssh") not in view.hidden_dirs


def test_a_hidden_path_inside_a_folder_bound_in_from_tmp_stays_hidden(tmp_path: Path) -> None:
    """sig's install is bound in even under /tmp; sig's data or a secret store inside that folder must
    still be laid over (not skipped as "under the private /tmp, so not there")."""
    install = tmp_path / "venv"
    home = install / "home"  # an odd layout on purpose: HOME (and ~/.sig) inside the bound folder
    for d in (".sig/credentials", ".ssh"):
        (home / d).mkdir(parents=True)
    (home / ".netrc").write_text("x")
    (tmp_path / "proj").mkdir()  # the working directory: beside the install, not around it
    view = build_view(_request(home, tmp_path / "proj", needed=[str(install)]), mounts=[])
    assert (str(install), str(install)) in view.files
    assert str(home / ".sig") in view.hidden_dirs and str(home / ".ssh") in view.hidden_dirs
    assert str(home / ".netrc") in view.hidden_files


def test_aliases_through_other_mounts() -> None:
    table = [("8:1", "/", "/"), ("8:2", "/", "/home"), ("8:2", "/u", "/mnt/u-home"),
             ("8:2", "/", "/srv/homes"), ("8:2", "/u/.sig/proxy", "/opt/proxy"), ("8:3", "/", "/data")]
    found = aliases("/home/u/.sig", table)
    assert set(found) == {"/mnt/u-home/.sig", "/srv/homes/u/.sig", "/opt/proxy"}
    assert aliases("/data/x", table) == []


def test_mountinfo_is_read(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                    "30 22 8:1 /home/with\\040space /mnt/a\\040b rw - ext4 /dev/sda1 rw\n")
    assert read_mounts(str(info)) == [("8:1", "/", "/"), ("8:1", "/home/with space", "/mnt/a b")]
    assert read_mounts(str(tmp_path / "missing")) == []
