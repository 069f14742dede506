"""The bounds of a flow-control key's limits, wherever they are set: a publish's
``Upstash-Flow-Control-Value``, the API's ``pin``, the admin."""

MAX_FLOW_PERIOD = 7 * 86400.0  # seconds; QStash's: a week at most
MAX_PARALLELISM = 10_000
MAX_RATE = 1_000_000
