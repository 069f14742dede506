"""The delivery side's ``manage.py bgjobs`` subcommands: ``keys`` and ``rotate-keys`` (the keys
outbound deliveries are signed with) and ``create-token`` (a bearer token for the QStash API).
Registered by DeliveryConfig.ready() through extensions.register_subcommand."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.extensions import Subcommand


def _print_keys(command: BaseCommand, current: str, next_key: str) -> None:
    command.stdout.write(f"QSTASH_CURRENT_SIGNING_KEY={current}")
    command.stdout.write(f"QSTASH_NEXT_SIGNING_KEY={next_key}")


def show_keys(command: BaseCommand, options: dict[str, Any]) -> None:
    from django_bgjobs.delivery.keys import signing_keys

    keys = signing_keys()
    _print_keys(command, keys.current, keys.next)
    if keys.rotated_at is not None:
        command.stdout.write(f"last rotated {keys.rotated_at.isoformat(timespec='seconds')}")


def rotate_keys(command: BaseCommand, options: dict[str, Any]) -> None:
    from django_bgjobs.delivery.keys import rotate

    keys = rotate()
    command.stdout.write(
        command.style.SUCCESS(
            "Rotated: deliveries are now signed with the old next key. Give receivers the new pair:"
        )
    )
    _print_keys(command, keys.current, keys.next)
    overlap = int(bgjobs_settings.DELIVERY_KEY_OVERLAP.total_seconds())
    command.stdout.write(
        "Receivers still configured with the old pair keep accepting deliveries (they try "
        "their next key, which signs now), so update them before rotating again: a second "
        "rotation signs with a key they do not know. Endpoints of this project with "
        f'"secrets": "bgjobs" also accept the old current key for {overlap} s '
        "(DELIVERY_KEY_OVERLAP)."
    )


def _token_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("name", help="What the token is for (shown in the admin).")
    parser.add_argument(
        "--user", default=None, help="The username of the user the token belongs to."
    )


def create_token(command: BaseCommand, options: dict[str, Any]) -> None:
    from django.contrib.auth import get_user_model

    from django_bgjobs.delivery.api.tokens import create_token as make

    name: str = options["name"].strip()
    if not name:
        raise CommandError("give the token a name")
    owner = None
    if options["user"] is not None:
        users = get_user_model()
        owner = users._default_manager.filter(**{users.USERNAME_FIELD: options["user"]}).first()
        if owner is None:
            raise CommandError(f"no user is named {options['user']!r}")
    token, raw = make(name, user=owner)
    command.stdout.write(
        command.style.SUCCESS(
            f"Token {token.name!r} made. It is shown once, now; only its hash is kept:"
        )
    )
    command.stdout.write(raw)


SUBCOMMANDS = (
    Subcommand(
        "keys",
        "Show the keys outbound deliveries are signed with, for receivers "
        "(QSTASH_CURRENT/NEXT_SIGNING_KEY).",
        show_keys,
    ),
    Subcommand(
        "rotate-keys",
        "Roll the signing keys: next becomes current, a new next is drawn. Update receivers "
        "after each roll.",
        rotate_keys,
    ),
    Subcommand(
        "create-token",
        "Make a bearer token for the QStash API (shown once; only its hash is stored).",
        create_token,
        _token_arguments,
    ),
)
