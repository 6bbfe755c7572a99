"""`sig doctor`: check the installation; every failure comes with its fix. Exit 1 if any check fails.

The checks are doctor/checks.py; this command renders their results."""

from __future__ import annotations

from typing import Any

from ..app import App
from ..args import Args

FLAGS = {"format": "value"}


class DoctorOptions:
    """`sig doctor`'s flags, typed."""

    def __init__(self, args: Args) -> None:
        self.json = args.value("format") == "json"


def run(args: Args, app: App) -> int:
    """Run every check, print the report (JSON with --format json), exit 1 when one failed."""
    from ...doctor.checks import run_checks

    opts = DoctorOptions(args)
    report = run_checks()
    failures = report.failures
    if opts.json:
        from ..output import to_json

        app.out(to_json({"ok": not failures, "checks": report.checks}))
    else:
        app.out(_text(report.checks, failures))
    return 1 if failures else 0


def _text(checks: list[dict[str, Any]], failures: list[dict[str, Any]]) -> str:
    """The report for a person, on stdout (`sig doctor | less` shows it, as `gh` does): control characters
    shown escaped, glyphs in ASCII where the terminal's encoding lacks them."""
    from ...core.text import printable
    from ..streams import for_stdout

    lines = []
    for c in checks:
        mark = "·" if c.get("note") else ("✓" if c["ok"] else "✗")
        detail = str(c.get("detail") or "")
        if "\n" in detail:
            lines.append(f"  {mark} {c['check']}")
            lines.extend(f"      {line.strip()}" for line in detail.splitlines())
        else:
            lines.append(f"  {mark} {c['check']}" + (f" ({detail})" if detail else ""))
        if not c["ok"]:
            lines.append(f"    → {c['hint']}")
    lines.append("")
    lines.append("All checks passed." if not failures else
                 f"{len(failures)} issue{'s' if len(failures) != 1 else ''} found.")
    return "\n".join(for_stdout(printable(line)) for line in lines)

