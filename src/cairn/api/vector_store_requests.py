"""The bodies of the vector store routes as OpenAI defines them, with Llama Stack's additions
(``embedding_model``, ``embedding_dimension``, ``provider_id`` on create; ``search_mode`` on search).

Shapes and sizes are checked here, before the service reads anything; what the values mean (a
chunking strategy against the model's window, attributes, filters, ranking options) the service checks,
naming the parameter at fault. Unknown fields are refused: a misspelt option is an error, never a
silent default; and types are strict (``"yes"`` is no boolean, ``"10"`` no number)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..core.vectors.search import MAX_QUERIES, MAX_QUERY_CHARS, MAX_TOKEN_CHARS
from ..core.vectors.stores import MAX_DESCRIPTION_CHARS, MAX_FILES, MAX_NAME_CHARS, MAX_PAIRS

FileId = Annotated[str, Field(min_length=1, max_length=128)]
Pairs = Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=MAX_PAIRS)]
"""Metadata or attributes: their keys and values are checked by the service."""
Strategy = Annotated[dict[str, Any], Field(max_length=4)]
ExpiresAfter = Annotated[dict[str, Any], Field(max_length=4)]  # ``{"anchor": "last_active_at", "days": n}``
Query = (
    Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
    | Annotated[list[Annotated[str, Field(max_length=MAX_QUERY_CHARS)]], Field(max_length=MAX_QUERIES)]
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateVectorStoreRequest(_Closed):
    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    file_ids: Annotated[list[FileId], Field(max_length=MAX_FILES)] = []
    chunking_strategy: Strategy | None = None
    metadata: Pairs | None = None
    expires_after: ExpiresAfter | None = None
    embedding_model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    embedding_dimension: Annotated[int, Field(ge=1, le=65536)] | None = None
    provider_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class UpdateVectorStoreRequest(_Closed):
    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None = None
    metadata: Pairs | None = None
    expires_after: ExpiresAfter | None = None
    """Left out: the expiry stays; null: the store no longer expires."""


class SearchRequest(_Closed):
    query: Query
    filters: Annotated[dict[str, Any], Field(max_length=4)] | None = None
    max_num_results: int = 10
    ranking_options: Annotated[dict[str, Any], Field(max_length=4)] | None = None
    rewrite_query: bool = False
    search_mode: str = "vector"
    page: Annotated[str, Field(max_length=MAX_TOKEN_CHARS)] | None = None
    """A previous page's ``next_page``, with the same query and options."""

    @field_validator("query", mode="wrap")
    @classmethod
    def _one_error_for_the_query(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """One error named ``query``, not one per member of its union (``query.constrained-str``)."""
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "query",
                f"a string, or a list of at most {MAX_QUERIES} strings, of at most {MAX_QUERY_CHARS} "
                "characters each",
            ) from None


class AttachFileRequest(_Closed):
    file_id: FileId
    attributes: Pairs | None = None
    chunking_strategy: Strategy | None = None


class UpdateFileRequest(_Closed):
    attributes: Pairs | None


class BatchFile(_Closed):
    file_id: FileId
    attributes: Pairs | None = None
    chunking_strategy: Strategy | None = None


class CreateFileBatchRequest(_Closed):
    file_ids: Annotated[list[FileId], Field(max_length=MAX_FILES)] | None = None
    files: Annotated[list[BatchFile], Field(max_length=MAX_FILES)] | None = None
    attributes: Pairs | None = None
    chunking_strategy: Strategy | None = None
