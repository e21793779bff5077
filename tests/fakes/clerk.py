"""A fake Clerk: signing keys that mint session tokens, and the Backend API endpoints HireFlow calls.

It checks `Authorization: Bearer <secret key>` like Clerk does, keeps users, and counts JWKS fetches.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(
            kid="ins_" + uuid.uuid4().hex[:16], private=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def mint(
        self,
        sub: str,
        *,
        azp: str | None = "http://localhost:5173",
        ttl_s: float = 60,
        nbf_offset_s: float = -5,
        iat_offset_s: float = 0,
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A Clerk-shaped session token (RS256, `sub`, `sid`, `azp`, `exp`, `nbf`, `iat`)."""
        now = time.time()
        claims: dict[str, Any] = {
            "sub": sub,
            "sid": "sess_" + uuid.uuid4().hex[:12],
            "iss": "https://clerk.test",
            "iat": int(now + iat_offset_s),
            "nbf": int(now + nbf_offset_s),
            "exp": int(now + ttl_s),
            **(extra or {}),
        }
        if azp is not None:
            claims["azp"] = azp
        return jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": kid or self.kid})


def clerk_user(
    clerk_id: str,
    *,
    email: str | None,
    first: str | None = "Ada",
    last: str | None = "Lovelace",
    image: str = "https://img.clerk.test/a.png",
    updated_at_ms: int | None = None,
) -> dict[str, Any]:
    """A user object as Clerk's Backend API and webhooks send it."""
    now_ms = int(time.time() * 1000)
    email_id = "idn_" + uuid.uuid4().hex[:12]
    addresses = []
    if email is not None:
        addresses.append(
            {
                "id": email_id,
                "object": "email_address",
                "email_address": email,
                "reserved": False,
                "verification": None,
                "linked_to": [],
                "created_at": now_ms,
                "updated_at": now_ms,
            }
        )
    return {
        "id": clerk_id,
        "object": "user",
        "external_id": None,
        "primary_email_address_id": email_id if email is not None else None,
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "username": None,
        "first_name": first,
        "last_name": last,
        "has_image": True,
        "image_url": image,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "email_addresses": addresses,
        "phone_numbers": [],
        "passkeys": [],
        "web3_wallets": [],
        "password_enabled": False,
        "two_factor_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "last_sign_in_at": None,
        "banned": False,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": None,
        "updated_at": updated_at_ms or now_ms,
        "created_at": now_ms,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "last_active_at": None,
        "legal_accepted_at": None,
    }


@dataclass
class FakeClerk:
    secret_key: str = "sk_test_fake_" + uuid.uuid4().hex
    keys: list[SigningKey] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwks_fetches: int = 0
    user_fetches: int = 0
    fail_status: int | None = None

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.secret_key}"

    @staticmethod
    def _error(status: int, code: str) -> web.Response:
        body = {"errors": [{"message": code, "long_message": code, "code": code}]}
        return web.json_response(body, status=status)

    async def jwks(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "authentication_invalid")
        self.jwks_fetches += 1
        return web.json_response({"keys": [k.jwk() for k in self.keys]})

    async def get_user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "authentication_invalid")
        self.user_fetches += 1
        if self.fail_status is not None:
            return self._error(self.fail_status, "injected_fault")
        user = self.users.get(request.match_info["user_id"])
        if user is None:
            return self._error(404, "resource_not_found")
        return web.json_response(user)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/jwks", self.jwks)
        app.router.add_get("/v1/users/{user_id}", self.get_user)
        return app
