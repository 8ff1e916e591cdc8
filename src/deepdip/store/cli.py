"""``deepdip validate STORE``: silent with exit 0 when valid; one line per problem and exit 1 otherwise."""

from __future__ import annotations

import sys

from deepdip.store.validate import validate_store


def add_arguments(parser):
    parser.add_argument("store", nargs="+", help="store file (.h5) or folder of shards")


def run(args) -> int:
    status = 0
    for path in args.store:
        for problem in validate_store(path):
            print(f"{path}: {problem}", file=sys.stderr)
            status = 1
    return status
