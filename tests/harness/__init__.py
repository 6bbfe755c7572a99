"""Reusable test harness: loopback echo servers and a subprocess runner for the `sig` CLI."""

from __future__ import annotations

from harness.servers import ServerHandle, start_echo_server, start_http_echo, start_https_echo
from harness.sigproc import Result, Sig, sig_command

__all__ = [
    "Result",
    "ServerHandle",
    "Sig",
    "sig_command",
    "start_echo_server",
    "start_http_echo",
    "start_https_echo",
]
