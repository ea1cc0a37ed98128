"""The few words the whole program shares (kept apart so the command line can import them cheaply)."""

STATUSES = ("pending", "active", "unsubscribed", "bounced")
FORMATS = ("html", "text")
