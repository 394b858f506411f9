"""Partner tokens at rest.

* The tokens partners send to call us (the token A we issue, our token B/C) are kept
  as SHA-256 digests only (:func:`hash_token`): the gateway never needs them back, only
  to recognise them.
* The tokens we send to call partners must be sent again, so they are encrypted with
  Fernet (AES-128-CBC with HMAC-SHA256) under the operator's secret key
  (:class:`TokenVault`).

The key comes from ``GATEWAY_SECRET_KEY`` or the ``secret_key`` file in the data dir
(:func:`load_token_vault`); several comma-separated keys allow a rotation: the first
encrypts, every one decrypts, and records under an older key are re-encrypted with the
first at start.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

KEY_FILE = "secret_key"
GENERATE_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class SecretKeyError(Exception):
    """The secret key is missing, malformed or not the one the stored tokens were
    encrypted with; the message is one line for the operator."""


def hash_token(token: str) -> str:
    """The stored form of a token a partner sends us: hex SHA-256.

    A plain, unsalted hash is enough here, unlike for charger passwords (PBKDF2): these
    tokens are 256-bit random values the gateway generated itself, so there is no
    dictionary to try and a preimage search is out of reach; a salt or a slow KDF would
    only make every request's lookup slower."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Whether ``token`` is the one ``stored_hash`` was made from (constant time)."""
    if stored_hash is None:
        return False
    return hmac.compare_digest(hash_token(token).encode(), stored_hash.encode())


class TokenVault:
    """Fernet encryption of the tokens we send to partners; ``keys`` newest first."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        try:
            self._fernets = [Fernet(key) for key in keys]
        except (ValueError, TypeError):
            raise SecretKeyError(
                "the secret key is not a Fernet key (32 url-safe base64-encoded bytes); "
                f"generate one with: {GENERATE_HINT}"
            ) from None
        self._primary = self._fernets[0]
        self._all = MultiFernet(self._fernets)

    @classmethod
    def parse(cls, value: str) -> TokenVault:
        """Comma-separated keys, newest first (surrounding blanks ignored)."""
        return cls([k.strip().encode() for k in value.split(",") if k.strip()])

    def encrypt(self, token: str) -> str:
        return self._primary.encrypt(token.encode()).decode()

    def decrypt(self, stored: str, *, what: str) -> tuple[str, bool]:
        """The token and whether it should be re-encrypted (it was under an older key).
        ``what`` names the record in the error (no key decrypts it)."""
        data = stored.encode()
        try:
            return self._primary.decrypt(data).decode(), False
        except InvalidToken:
            pass
        try:
            return self._all.decrypt(data).decode(), True
        except InvalidToken:
            raise SecretKeyError(
                f"{what} cannot be decrypted with the secret key (GATEWAY_SECRET_KEY or "
                f"{KEY_FILE} in the data dir): not the key it was stored with; after a key "
                "change, list the old key after the new one: GATEWAY_SECRET_KEY=new,old"
            ) from None


def load_token_vault(
    secret_key: str | None, data_dir: Path, *, shared_storage: bool
) -> TokenVault:
    """The vault of the configured key: ``secret_key`` (GATEWAY_SECRET_KEY), else the
    ``secret_key`` file in ``data_dir``. Without either, a key is generated into that
    file (mode 0600), as the admin token is, unless the storage is shared by several
    processes (Redis): they must all use the same key, which one process cannot make up
    for the others, so that is a :class:`SecretKeyError` asking for the setting."""
    if secret_key is not None and secret_key.strip():
        return TokenVault.parse(secret_key)
    path = data_dir / KEY_FILE
    if path.is_file():
        return TokenVault.parse(path.read_text())
    if shared_storage:
        raise SecretKeyError(
            "GATEWAY_SECRET_KEY is required with GATEWAY_REDIS_URL (every process sharing "
            f"the Redis needs the same key); generate one with: {GENERATE_HINT}"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return TokenVault.parse(path.read_text())
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    log.warning("generated the secret key for partner tokens in %s: back it up with the data", path)
    return TokenVault([key])
