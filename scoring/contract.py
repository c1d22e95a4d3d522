"""Types every request of the v1 contract shares, online and offline (a campaign file is a plan request)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

# Whole numbers or text, as the bank's warehouse has them; strict, so that true is no id and "42" stays text.
UserId = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)] | Annotated[str, Field(strict=True, min_length=1,
                                                                                      max_length=128)]
