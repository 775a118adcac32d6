"""``manage.py trusted_publishing <subcommand>``: issuers, publishers, tokens and housekeeping.

Text output is for people; ``--json`` prints one JSON document for scripts. Errors exit with
status 1 and a message that says what to do about them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import cli
from ...providers import PROVIDERS


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["—" if v in (None, "") else str(v) for v in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _when(value: str | None) -> str:
    # ISO timestamps shortened to the minute, in UTC as stored.
    return value[:16].replace("T", " ") if value else "—"


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    """The providers' ``add-publisher`` options, in one group per set of providers reading them
    (titled with their ids); a shared option's help joins the providers' texts with "or"."""
    readers: dict[str, list[str]] = {}
    helps: dict[str, list[str]] = {}
    for provider in PROVIDERS.values():
        for option in provider.cli_options:
            readers.setdefault(option.name, []).append(provider.id)
            texts = helps.setdefault(option.name, [])
            if option.help and option.help not in texts:
                texts.append(option.help)
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, ids in readers.items():
        groups.setdefault(tuple(ids), []).append(name)
    for ids, names in groups.items():
        group = parser.add_argument_group(" / ".join(ids))
        for name in names:
            group.add_argument(f"--{name}", help=" or ".join(helps[name]) or None)


class Command(BaseCommand):
    help = "Manage Trusted Publishing: issuers, publishers, issued tokens, housekeeping."

    def add_arguments(self, parser: CommandParser) -> None:
        providers = list(PROVIDERS)
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--json", action="store_true", help="print JSON for scripts")
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        def add(name: str, text: str) -> argparse.ArgumentParser:
            return sub.add_parser(name, help=text, description=text, parents=[common])

        p = add("add-issuer", "Trust an OIDC issuer (or update the one with this URL).")
        p.add_argument("--provider", required=True, choices=providers)
        p.add_argument("--url", required=True, help="exactly the `iss` claim of its tokens")
        p.add_argument("--jwks-file", help="pin this public JWKS (JSON) instead of discovery")
        p.add_argument(
            "--discovery",
            action="store_true",
            help="switch back to fetching keys by OIDC discovery",
        )
        p.add_argument("--name", help="display name")
        p.add_argument("--disable", action="store_true", help="add it disabled")

        add("list-issuers", "List trusted issuers.").add_argument("--provider", choices=providers)

        p = add("refresh-keys", "Fetch an issuer's signing keys now and print their key ids.")
        p.add_argument("url")

        p = add("add-publisher", "Register a trusted publisher for one or more projects.")
        p.add_argument("--provider", required=True, choices=providers)
        p.add_argument(
            "--project",
            action="append",
            dest="projects",
            default=[],
            metavar="NAME",
            help="project it may publish (repeatable)",
        )
        p.add_argument(
            "--pending",
            action="store_true",
            help="the project does not exist yet: create it on the first publish",
        )
        p.add_argument(
            "--issuer",
            dest="issuer_url",
            metavar="URL",
            help="a trusted issuer of this provider (default: the public one)",
        )
        p.add_argument(
            "--created-by",
            metavar="LOGIN",
            help="username of the Django user recorded as its creator (default: your login "
            "name, if such a user exists)",
        )
        add_provider_options(p)

        p = add("list-publishers", "List publishers.")
        p.add_argument("--provider", choices=providers)
        p.add_argument("--project", help="only publishers of this project")
        p.add_argument("--issuer", dest="issuer_url", metavar="URL")

        for name, text in (
            ("disable-publisher", "Disable publishers (their tokens stop working)."),
            ("enable-publisher", "Enable publishers again."),
        ):
            add(name, text).add_argument("ids", nargs="+", type=int, metavar="ID")

        add(
            "remove-publisher", "Delete publishers; their issued tokens are deleted with them."
        ).add_argument("ids", nargs="+", type=int, metavar="ID")

        p = add(
            "remove-project",
            "Remove projects from a publisher; its live tokens covering them are revoked.",
        )
        p.add_argument("--publisher", dest="publisher_id", type=int, required=True, metavar="ID")
        p.add_argument("projects", nargs="+", metavar="NAME", help="project names to remove")

        p = add("list-tokens", "List issued upload tokens (never the tokens themselves).")
        p.add_argument("--live", action="store_true", help="only tokens that still work")
        p.add_argument("--project", help="only tokens for this project")
        p.add_argument("--publisher", dest="publisher_id", type=int, metavar="ID")
        p.add_argument("--limit", type=int, default=100, help="newest N (default 100)")

        p = add("revoke-token", "Revoke issued tokens by id, or all live tokens of a publisher.")
        p.add_argument("ids", nargs="*", type=int, metavar="ID")
        p.add_argument(
            "--publisher",
            dest="publisher_id",
            type=int,
            metavar="ID",
            help="revoke every live token of this publisher",
        )

        p = add("purge", "Delete expired replay records, old tokens, expired pending publishers.")
        p.add_argument(
            "--token-days",
            type=int,
            default=7,
            metavar="N",
            help="delete tokens expired more than N days ago (default 7)",
        )
        p.add_argument(
            "--events-older-than",
            type=int,
            metavar="DAYS",
            help="delete audit events older than DAYS (default: the AUDIT_RETENTION_DAYS setting)",
        )
        p.add_argument(
            "--batch-size",
            type=int,
            default=cli.PURGE_BATCH_SIZE,
            metavar="N",
            help=f"rows deleted per transaction (default {cli.PURGE_BATCH_SIZE})",
        )
        p.add_argument("--dry-run", action="store_true", help="only count")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"]
        handler: Callable[[dict[str, Any]], tuple[Any, str]] = getattr(
            self, "do_" + name.replace("-", "_")
        )
        data, text = handler(options)
        if options.get("json"):
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
        else:
            self.stdout.write(text)

    # --- subcommands (each returns (data, text)) ------------------------------------------------
    def do_add_issuer(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.add_issuer(
            provider=o["provider"],
            url=o["url"],
            jwks_file=o["jwks_file"],
            name=o["name"],
            disable=o["disable"],
            discovery=o["discovery"],
        )
        verb = "Added" if data["created"] else "Updated"
        keys = (
            f"static keys {', '.join(data['static_key_ids'])}"
            if data["key_source"] == "static"
            else "keys by OIDC discovery"
        )
        state = "enabled" if data["enabled"] else "DISABLED"
        return data, f"{verb} {data['provider']} issuer {data['url']} ({keys}; {state})."

    def do_list_issuers(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.list_issuers(provider=o["provider"])
        rows = [
            (
                d["id"],
                d["url"],
                d["provider"],
                d["name"],
                d["key_source"],
                "yes" if d["enabled"] else "no",
                d["publishers"],
            )
            for d in data
        ]
        return data, _table(
            rows, ["ID", "URL", "PROVIDER", "NAME", "KEYS", "ENABLED", "PUBLISHERS"]
        )

    def do_refresh_keys(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.refresh_keys(o["url"])
        kids = ", ".join(data["key_ids"]) or "none"
        return data, f"{data['url']}: {len(data['key_ids'])} key(s): {kids}"

    def do_add_publisher(self, o: dict[str, Any]) -> tuple[Any, str]:
        created_by = o.get("created_by")
        data = cli.add_publisher(
            provider=o["provider"],
            projects=o["projects"],
            issuer_url=o["issuer_url"],
            pending=o["pending"],
            created_by=cli.operator_login() if created_by is None else created_by,
            created_by_defaulted=created_by is None,
            **{option.dest: o.get(option.dest) for option in cli.provider_options()},
        )
        if data["created"]:
            text = f"Added publisher #{data['id']}: {data['description']}"
        else:
            text = f"Publisher #{data['id']} already exists: {data['description']}"
        added = ", ".join(data["projects_added"]) or "none new"
        text += (
            f"\n  issuer:   {data['issuer']}\n  projects: {', '.join(data['projects'])} "
            f"(added: {added})\n  state:    {data['state']}"
        )
        if data["pending_expires_at"]:
            text += (
                f" — creates {', '.join(data['projects'])} on first publish, until "
                f"{_when(data['pending_expires_at'])} UTC"
            )
        if data["created_by"]:
            text += f"\n  creator:  {data['created_by']}"
        for key in ("created_by_note", "note"):
            if data.get(key):
                text += f"\n  note:     {data[key]}"
        return data, text

    def _publisher_rows(self, data: list[dict[str, Any]]) -> str:
        rows = [
            (
                d["id"],
                d["description"],
                ", ".join(d["projects"]),
                d["state"],
                _when(d["last_used_at"]),
                d["live_tokens"],
            )
            for d in data
        ]
        return _table(rows, ["ID", "PUBLISHER", "PROJECTS", "STATE", "LAST USED", "LIVE TOKENS"])

    def do_list_publishers(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.list_publishers(
            provider=o["provider"], project=o["project"], issuer_url=o["issuer_url"]
        )
        return data, self._publisher_rows(data)

    def do_disable_publisher(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.set_publisher_enabled(o["ids"], False)
        return data, "Disabled:\n" + self._publisher_rows(data)

    def do_enable_publisher(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.set_publisher_enabled(o["ids"], True)
        return data, "Enabled:\n" + self._publisher_rows(data)

    def do_remove_publisher(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.remove_publishers(o["ids"])
        lines = [
            f"Removed publisher #{d['id']}: {d['description']} (projects: "
            f"{', '.join(d['projects']) or 'none'}; {d['tokens_deleted']} issued token(s) "
            f"deleted, {d['live_tokens']} of them live)"
            for d in data
        ]
        return data, "\n".join(lines)

    def do_remove_project(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.remove_projects(o["publisher_id"], o["projects"])
        text = (
            f"Removed {', '.join(data['projects_removed'])} from publisher #{data['id']}: "
            f"{data['description']}\n  projects: {', '.join(data['projects'])}\n"
            f"  revoked:  {data['tokens_revoked']} live token(s) covering the removed project(s)"
        )
        return data, text

    def do_list_tokens(self, o: dict[str, Any]) -> tuple[Any, str]:
        if o["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        data = cli.list_tokens(
            live=o["live"], project=o["project"], publisher_id=o["publisher_id"], limit=o["limit"]
        )
        rows = [
            (
                d["id"],
                d["publisher_id"],
                d["subject"],
                ", ".join(d["projects"]),
                d["state"],
                "single" if d["single_use"] else "multi",
                _when(d["created_at"]),
                _when(d["expires_at"]),
                d["upload_count"],
                d["run_id"],
            )
            for d in data
        ]
        return data, _table(
            rows,
            [
                "ID",
                "PUBLISHER",
                "SUBJECT",
                "PROJECTS",
                "STATE",
                "USE",
                "ISSUED (UTC)",
                "EXPIRES (UTC)",
                "UPLOADS",
                "RUN",
            ],
        )

    def do_revoke_token(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.revoke_tokens(o["ids"], publisher_id=o["publisher_id"])
        lines = [
            f"Revoked {len(data['revoked'])} token(s)"
            + (f": {', '.join(map(str, data['revoked']))}" if data["revoked"] else ".")
        ]
        for item in data["not_live"]:
            lines.append(f"Token {item['id']} was already {item['state']}; left as it is.")
        return data, "\n".join(lines)

    def do_purge(self, o: dict[str, Any]) -> tuple[Any, str]:
        data = cli.purge(
            token_days=o["token_days"],
            events_older_than=o["events_older_than"],
            dry_run=o["dry_run"],
            batch_size=o["batch_size"],
        )
        verb = "Would delete" if data["dry_run"] else "Deleted"
        labels = {
            "used_identity_tokens": "expired replay records (used identity tokens)",
            "issued_tokens": f"issued tokens expired more than {data['token_days']} day(s) ago",
            "expired_pending_publishers": "expired pending publishers",
            "audit_events": f"audit events older than {data['events_older_than']} day(s)",
        }
        lines = [f"{verb}:"] + [
            f"  {count:>7}  {labels[key]}" for key, count in data["deleted"].items()
        ]
        return data, "\n".join(lines)
