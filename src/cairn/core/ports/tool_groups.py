"""Tool group rows: the tool groups of Llama Stack's tool-runtime that a tenant registered (remote MCP
servers). Used by ``core.agents.registry``; implemented by ``adapters.sql.tool_groups``.

Invariants:
- Every read and write names the tenant: a tenant never sees, changes or counts another's groups, and
  two tenants may each have a group of one name.
- ``put_group`` inserts a group, or replaces the tenant's group of that id whole, but for its
  ``created_at``: a group keeps its place in the list when it is registered again.
- ``list_groups`` returns the tenant's groups in the order they were first registered.
"""

from __future__ import annotations

from typing import Protocol

from ..records import ToolGroupRecord


class ToolGroupRows(Protocol):
    async def put_group(self, group: ToolGroupRecord) -> None: ...

    async def get_group(self, tenant: str, group_id: str) -> ToolGroupRecord | None: ...

    async def list_groups(self, tenant: str) -> list[ToolGroupRecord]: ...

    async def delete_group(self, tenant: str, group_id: str) -> bool:
        """False if the tenant has no such group."""
