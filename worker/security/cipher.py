"""OAuth tokens at rest: MultiFernet with the keys of TOKEN_ENCRYPTION_KEYS, newest first.

Encryption uses the newest key; decryption tries every key, so keys can be rotated
(`herald tokens rotate-key` re-encrypts rows with the newest). In development with
no key configured, one is generated once under HERALD_HOME (mode 0600) so a laptop
works out of the box; production refuses to start without keys (settings).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from worker import runtime
from worker.errors import RefusedError
from worker.settings import Settings, get_settings

#: File under HERALD_HOME holding the generated development key.
DEV_KEY_FILE = "dev-token-key"


class TokenDecryptError(RefusedError):
    """A stored token cannot be decrypted with any configured key (wrong or missing key)."""


class TokenCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            # Never include the ciphertext: it is still a secret for whoever has an old key.
            raise TokenDecryptError("token does not decrypt with any configured key") from None

    def rotate(self, ciphertext: str) -> str:
        """The same token encrypted with the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError("token does not decrypt with any configured key") from None

    def __repr__(self) -> str:
        return "TokenCipher(<keys hidden>)"


def configured_keys(settings: Settings) -> list[str]:
    if settings.token_encryption_keys is not None:
        raw = settings.token_encryption_keys.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]
    return [_development_key(settings.home)]


def _development_key(home: Path) -> str:
    path = home / DEV_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        draft = home / f"{DEV_KEY_FILE}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
        # link() fails if the key exists: of two processes starting at once, one key wins.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()


#: This process's cipher, from settings (worker.runtime: `runtime.reset()` re-reads the keys).
get_cipher = runtime.cached("token cipher", lambda: TokenCipher(configured_keys(get_settings())))
