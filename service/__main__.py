"""Command line of the online side: `python -m service --help`."""

from __future__ import annotations

import argparse
import sys

from scoring.settings import get_settings


def _cmd_import(args: argparse.Namespace) -> None:
    from service.store import import_all

    done, missing = import_all(get_settings())
    for line in done:
        print(f"imported {line}")
    for line in missing:
        print(f"missing  {line}", file=sys.stderr)
    if missing and not args.allow_missing:
        sys.exit("some champions are missing: the service will not report ready until they exist")


def _cmd_keys(args: argparse.Namespace) -> None:
    from service.keys import KeyStore

    store = KeyStore(get_settings().keys_file)
    try:
        if args.action == "add":
            key = store.add(args.name, args.scopes.split(","))
            print(key)
            print(f"(shown once; only its hash is kept in {store.path})", file=sys.stderr)
        elif args.action == "list":
            for k in store.list():
                print(f"{k.key_id}  {k.name:20s} {','.join(sorted(k.scopes))}")
        elif args.action == "revoke":
            if not store.revoke(args.name):
                sys.exit(f"no key with id {args.name}")
            print(f"revoked {args.name}; the server refuses it within a second", file=sys.stderr)
    except ValueError as e:  # bad scopes, or a keys file that cannot be read (never written over)
        sys.exit(str(e))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import-models", help="copy each MLflow @champion and the feature snapshot into the BentoML store")
    p.add_argument("--allow-missing", action="store_true", help="exit 0 even if a champion is missing")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("keys", help="API keys: add NAME --scopes campaign,risk | list | revoke KEY_ID")
    p.add_argument("action", choices=["add", "list", "revoke"])
    p.add_argument("name", nargs="?", help="add: a name for the caller; revoke: the key id")
    p.add_argument("--scopes", default="campaign", help="comma-separated: campaign, risk (default campaign)")
    p.set_defaults(func=_cmd_keys)

    args = parser.parse_args(argv)
    if args.command == "keys" and args.action in ("add", "revoke") and not args.name:
        parser.error(f"keys {args.action} needs a NAME")
    args.func(args)


if __name__ == "__main__":
    main()
