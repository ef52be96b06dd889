"""Request-scoped dependencies shared by the faces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..core.auth import ApiKeys, Principal
from ..core.objects import ObjectEngine
from ..settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    objects: ObjectEngine
    api_keys: ApiKeys


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def principal(request: Request) -> Principal:
    return await services(request).api_keys.authenticate(request.headers.get("authorization"))


ServicesDep = Annotated[Services, Depends(services)]
PrincipalDep = Annotated[Principal, Depends(principal)]
