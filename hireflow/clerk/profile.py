"""Map a Clerk user (Backend API object or webhook payload) onto what HireFlow stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hireflow.errors import BadRequest
from hireflow.store.users import Profile


def primary_email(user: Mapping[str, Any]) -> str | None:
    addresses = [a for a in user.get("email_addresses") or [] if isinstance(a, Mapping)]
    primary_id = user.get("primary_email_address_id")
    for address in addresses:
        if primary_id and address.get("id") == primary_id and address.get("email_address"):
            return str(address["email_address"])
    for address in addresses:
        if address.get("email_address"):
            return str(address["email_address"])
    return None


def profile_from_clerk(user: Mapping[str, Any]) -> Profile:
    """The seed's mapping: primary email, "first last" as name, `image_url` as profile image."""
    clerk_id = user.get("id")
    if not isinstance(clerk_id, str) or not clerk_id:
        raise BadRequest("Clerk user has no id")
    email = primary_email(user)
    if email is None:
        raise BadRequest(f"Clerk user {clerk_id} has no email address")
    name = f"{user.get('first_name') or ''} {user.get('last_name') or ''}".strip() or email.split("@")[0]
    image = user.get("image_url") or user.get("profile_image_url") or ""
    return Profile(clerk_id=clerk_id, name=name, email=email, profile_image=str(image))
