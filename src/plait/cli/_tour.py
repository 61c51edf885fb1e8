"""``plait tour``: run the seed's scenes, list them, or run the ones named."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``tour`` on the top-level parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tour",
        help="run the seed tutorial's scenes and print what each one measured",
        description=(
            "Run the seed tutorial's scenes, each one short and with no input. "
            "With NAMEs, run only those (a topic such as 'threads' runs all its scenes)."
        ),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="scene or topic to run")
    parser.add_argument("--list", action="store_true", help="list the scenes and exit")
    parser.add_argument(
        "--trace",
        metavar="DIR",
        help="record each scene's timeline into DIR: SCENE.json (Chrome trace) and SCENE.html",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``plait tour``'s body; returns the exit code."""
    from plait.tour import UnknownSceneError, all_scenes, run_scenes, select

    scenes = all_scenes(opt_in=True)
    tour = all_scenes()
    if args.list:
        width = max(len(s.name) for s in scenes)
        for scene in scenes:
            mark = "" if scene in tour else "  (only when named: plait tour " + scene.name + ")"
            print(f"{scene.name:<{width}}  {scene.title}{mark}")
        return 0
    try:
        chosen = select(args.names, scenes) if args.names else tour
    except UnknownSceneError as exc:
        print(f"plait tour: {exc}", file=sys.stderr)
        return 2
    if args.trace is None:
        run_scenes(chosen)
        return 0
    from plait.trace.scenes import traced_in

    try:
        around = traced_in(args.trace)
    except OSError as exc:
        print(f"plait tour: {exc}", file=sys.stderr)
        return 2
    run_scenes(chosen, around=around)
    print(f"traces and pages written to {args.trace}")
    return 0
