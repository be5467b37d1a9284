"""Domain rules as pure functions, which the store and core apply inside their own work.

``lifecycle``: the status a subscriber moves to on each event (consent rules).
``optin``: what the public subscribe form may do: the mailbox an address reaches (for
rate limits) and the name a confirmation mail may repeat.

Pure: no I/O, no clock (``now`` is an argument), no settings object.
"""
