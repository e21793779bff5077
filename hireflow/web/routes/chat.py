"""`/api/chat/token`: a Stream chat token for the caller."""

from __future__ import annotations

from aiohttp import web

from hireflow.stream.clients import chat_user_token
from hireflow.web.appkeys import CHAT, QUOTAS, SETTINGS
from hireflow.web.auth import authenticate
from hireflow.web.jsonio import json_response

routes = web.RouteTableDef()


@routes.get("/api/chat/token")
async def chat_token(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    await request.app[QUOTAS].hit("chat_token", caller.claims.user_id)
    user = caller.user
    token = chat_user_token(request.app[CHAT], user["clerkId"], ttl_s=request.app[SETTINGS].chat_token_ttl_s)
    return json_response(
        {
            "token": token,
            "userId": user["clerkId"],
            "userName": user["name"],
            "userImage": user["profileImage"],
        }
    )
