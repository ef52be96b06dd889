"""The tool groups service (``core.agents.registry``) on the composed adapters: a tenant's registered
groups are bounded, checked before its server is asked anything."""

from __future__ import annotations

import pytest

from cairn.compose import Composition
from cairn.core.agents.mcp_tools import NO_HEADERS
from cairn.core.agents.registry import MAX_GROUPS, MCP_PROVIDER
from cairn.core.errors import InvalidInput
from cairn.core.records import ToolGroupRecord

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["sqlite+local"], indirect=True)]

NOWHERE = "http://127.0.0.1:9/mcp"  # never reached: the bound is checked first


async def test_a_tenant_registers_at_most_max_groups(composition: Composition) -> None:
    for n in range(MAX_GROUPS):
        group = ToolGroupRecord(f"mcp::g{n}", "alice", float(n), MCP_PROVIDER, NOWHERE, None, [])
        await composition.tool_group_rows.put_group(group)
    groups = composition.services.tool_groups
    with pytest.raises(InvalidInput) as refused:
        await groups.register("alice", "mcp::one-more", MCP_PROVIDER, NOWHERE, None, NO_HEADERS)
    assert refused.value.param == "toolgroup_id"
    assert len(await groups.list("alice")) == MAX_GROUPS + 1  # and builtin::rag
