"""A QStash-compatible REST API over the delivery engine (``django_bgjobs.delivery``).

Mount it anywhere::

    path("qstash/", include("django_bgjobs.delivery.api.urls"))

and point the official SDKs at it: ``qstash.QStash(token, base_url="https://host/qstash")``,
``new Client({baseUrl: "https://host/qstash", token})``. Tokens are ``ApiToken`` rows
(``tokens.create_token``), sent as ``Authorization: Bearer``; never in the query string.
"""
