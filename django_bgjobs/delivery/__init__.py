"""Outbound delivery, the self-hosted QStash side: ``publish()`` a message to a URL or a URL
group; a delivery job signs and sends each attempt, retries it the way QStash does, calls back
and dead-letters it. See docs/architecture.md for the parts."""
