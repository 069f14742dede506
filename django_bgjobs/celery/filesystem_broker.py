"""kombu's filesystem transport, with each message written whole: the server-less broker.

kombu's writer creates a message file, then writes into it; its reader lists the folder and
moves and reads any ``*.<queue>.msg`` file without taking the writer's lock. A reader that
comes between the two reads an empty file, raises ``JSONDecodeError``, and the worker's
consumer dies (seen in this project's test runs as publishing grew busier). Here a message is
written under a name the reader skips, then renamed into place: ``os.replace`` is atomic on one
filesystem, so a reader sees a whole message or none.

    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT = "django_bgjobs.celery.filesystem_broker:Transport"
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PATH = "django_bgjobs.celery.filesystem_broker:Transport"


class Channel(filesystem.Channel):
    # kombu's own stubs disagree on this signature (AbstractChannel vs filesystem.Channel).
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu gives (its reader takes files in name order: milliseconds first).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # ".<uuid>.tmp": not "<anything>.<queue>.msg", so the reader passes it by.
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.tmp")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(message)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
