"""OAuth tokens over time: refreshing them before they expire, rotating their keys.

* :mod:`.policy` — when a token is due (one rule, in Python and in SQL);
* :mod:`.refresh` — refresh one account under its lock (``tokens.refresh``);
* :mod:`.sweep` — find the accounts due and send their refreshes (``tokens.refresh_expiring``);
* :mod:`.rotation` — re-encrypt every account's tokens with the newest key.

Encryption itself is :mod:`worker.security.cipher`; the platforms' token endpoints are
:mod:`worker.platforms.oauth`.
"""
