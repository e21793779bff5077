"""Development auth without Clerk: a local RSA key pair whose public half is `CLERK_JWT_KEY`.

Tokens minted with it go through the normal verification path; there is no bypass. Refused when
`NODE_ENV=production`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hireflow.settings import Settings

STATE_DIR = Path(".hireflow")
PRIVATE_KEY = "dev-clerk-key.pem"
PUBLIC_KEY = "dev-clerk-key.pub.pem"
TOKEN_TTL_S = 24 * 3600


class ProductionRefused(RuntimeError):
    pass


def ensure_key_pair(state_dir: Path = STATE_DIR) -> str:
    """The public PEM, generating the pair on first use (private key readable by the owner only)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = state_dir / PRIVATE_KEY, state_dir / PUBLIC_KEY
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return public_path.read_text()


def mint(settings: Settings, clerk_id: str, *, state_dir: Path = STATE_DIR, ttl_s: int = TOKEN_TTL_S) -> str:
    """A Clerk-shaped session token for `clerk_id`, signed with the development key."""
    if settings.node_env == "production":
        raise ProductionRefused("development tokens cannot be minted when NODE_ENV=production")
    ensure_key_pair(state_dir)
    private = (state_dir / PRIVATE_KEY).read_text()
    now = int(time.time())
    claims = {
        "sub": clerk_id,
        "sid": "sess_dev_" + uuid.uuid4().hex[:12],
        "iss": "hireflow-dev",
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_s,
    }
    if settings.authorized_parties:
        claims["azp"] = settings.authorized_parties[0]
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": "hireflow-dev"})
