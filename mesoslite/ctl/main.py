"""The ``mesoslite ctl`` command: its parser and the dispatch to cluster or app commands.

Owns :func:`add_ctl_parser` (what :mod:`mesoslite.cli` calls) and :func:`run_ctl`.
The cluster commands live in :mod:`mesoslite.ctl.cluster`, the app commands
in :mod:`mesoslite.ctl.apps`, kill/teardown/weights/top in :mod:`mesoslite.ctl.operate`,
drain/deactivate/reactivate in :mod:`mesoslite.ctl.drain`, exec in :mod:`mesoslite.ctl.exec`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from mesoslite.ctl.apps import APP_COMMANDS, add_app_parsers, run_app_command
from mesoslite.ctl.cluster import add_cluster_parsers, run_cluster_command
from mesoslite.ctl.drain import DRAIN_COMMANDS, add_drain_parsers, run_drain_command
from mesoslite.ctl.exec import add_exec_parser, run_exec_command
from mesoslite.ctl.operate import OPERATE_COMMANDS, add_operate_parsers, run_operate_command


def add_ctl_parser(sub: Any) -> None:
    """Register ``ctl`` and its sub-commands on the main parser's sub-parsers ``sub``."""
    p = sub.add_parser("ctl", help="inspect a running cluster")
    ctl = p.add_subparsers(dest="ctl_command", required=True, metavar="WHAT")
    add_cluster_parsers(p, ctl)
    add_app_parsers(p, ctl)
    add_operate_parsers(ctl)
    add_drain_parsers(ctl)
    add_exec_parser(ctl)
    p.set_defaults(func=run_ctl)


def run_ctl(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one ctl sub-command; 1 with a message on failure, 130 on Ctrl-C."""
    if args.ctl_command in APP_COMMANDS:
        return run_app_command(args, out)
    if args.ctl_command in OPERATE_COMMANDS:
        return run_operate_command(args, out)
    if args.ctl_command in DRAIN_COMMANDS:
        return run_drain_command(args, out)
    if args.ctl_command == "exec":
        return run_exec_command(args, out)
    return run_cluster_command(args, out)
