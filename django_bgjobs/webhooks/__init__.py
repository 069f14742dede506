"""Inbound webhooks: verify a provider's signature (QStash, Standard Webhooks, Stripe, GitHub),
store the receipt and run its handler job."""
