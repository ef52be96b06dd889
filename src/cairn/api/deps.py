"""Request-scoped dependencies shared by the faces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..core.agents.registry import ToolGroups
from ..core.agents.service import Agents
from ..core.auth import ApiKeys, Principal
from ..core.conversations import Conversations
from ..core.health import Probe
from ..core.inference.limits import InferenceLimits
from ..core.inference.router import InferenceRouter
from ..core.jobs import JobRunner
from ..core.objects import ObjectEngine
from ..core.ports.ratelimit import RateLimiter
from ..core.responses.service import Responses
from ..core.shields import Shields
from ..core.uploads import UploadEngine
from ..core.vectors.raw_chunks import RawChunks
from ..core.vectors.stores import VectorStores
from ..settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    """What the faces use, as the composer built it (``cairn.compose``)."""

    settings: Settings
    objects: ObjectEngine
    uploads: UploadEngine
    api_keys: ApiKeys
    inference: InferenceRouter
    vector_stores: VectorStores
    vector_io: RawChunks
    """Llama Stack's vector-io: chunks inserted into and queried from the vector stores."""
    conversations: Conversations
    responses: Responses
    tool_groups: ToolGroups
    """Llama Stack's tool groups and tool-runtime: built in, and the MCP servers tenants registered."""
    agents: Agents
    """Llama Stack's Agents API, on the same agent loop as the Responses API."""
    shields: Shields
    """Llama Stack's shields and safety checks, and OpenAI's moderations, on the tenant's models."""
    jobs: JobRunner
    """Background work; the app starts it and closes it before the database."""
    inference_limits: InferenceLimits
    rate_limiter: RateLimiter | None
    probes: dict[str, Probe]
    """The health checks of ``/health?deep=1``, by dependency: the database, the blobs, Redis."""


async def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False, description="An API key from `cairn keys create`; none in open mode.")


async def principal(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    # ``_documented`` only puts the Bearer scheme into /docs. The front door (api/front_door.py) has
    # authenticated every route that depends on this, before reading its body.
    principal: Principal = request.state.principal
    return principal


ServicesDep = Annotated[Services, Depends(services)]
PrincipalDep = Annotated[Principal, Depends(principal)]
