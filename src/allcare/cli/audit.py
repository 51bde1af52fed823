"""``allcare audit export``: the access audit as CSV or JSON Lines, for the clinic's records."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import cli_store, command_group, fail
from allcare.core.clock import aware
from allcare.services.audit.access_log import FIELDS, AccessQuery, stream

audit_app = command_group("The access audit of patient data.")


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"{name} must be an ISO-8601 date or time, e.g. 2026-11-01") from exc
    return aware(moment)


@audit_app.command("export")
def export(
    since: Annotated[
        str | None, typer.Option(help="From this time (local unless an offset)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time")] = None,
    format: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output)")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only what this user did")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's data")] = None,
) -> None:
    """Every recorded access, oldest first."""
    if format not in ("csv", "jsonl"):
        raise fail("--format must be csv or jsonl")
    query = AccessQuery(
        actor=user, owner=owner, since=_moment(since, "--since"), until=_moment(until, "--until")
    )
    handle = out.open("w", newline="") if out else sys.stdout
    written = 0
    try:
        with cli_store() as (_settings, db, _sealer), db.session() as session:
            writer = csv.DictWriter(handle, fieldnames=FIELDS) if format == "csv" else None
            if writer:
                writer.writeheader()
            for record in stream(session, query):
                row = asdict(record)
                if writer:
                    writer.writerow(row)
                else:
                    handle.write(json.dumps(row) + "\n")
                written += 1
    finally:
        if out:
            handle.close()
    if out:
        typer.echo(f"Wrote {written} access records to {out}")
