"""The bounded field types of the signalling messages (a message's size bounds its work)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Name = Annotated[str, StringConstraints(max_length=200)]
Short = Annotated[str, StringConstraints(max_length=64)]
Text = Annotated[str, StringConstraints(max_length=1024)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=60000)]
Token = Annotated[
    str, StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]
Seq = Annotated[int, Field(ge=0, le=2**53 - 1)]
# A dial's nonce: the grant that answers it carries it back, signed (issue 12).
Nonce = Annotated[str, StringConstraints(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class WireModel(BaseModel):
    """Every message: frozen, strict, no field it does not name (API.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
