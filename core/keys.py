"""Keys of experiments, variants and flags: one pattern and one length, for every schema that names them."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr, TypeAdapter

KEY_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_KEY_LENGTH = 64

Key = Annotated[StrictStr, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN)]


def key_schema() -> dict[str, Any]:
    """The JSON Schema of a key, for OpenAPI parameters."""
    return TypeAdapter(Key).json_schema()
