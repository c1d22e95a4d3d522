"""What a log record keeps of a request error: where and what kind, never what the caller sent."""

from __future__ import annotations

import pydantic
import pytest

from service.logs import describe


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    age: float = 0


def test_a_validation_error_names_known_fields_and_not_unknown_ones():
    with pytest.raises(pydantic.ValidationError) as caught:
        Strict.model_validate({"age": "27182.818284x", "31415926535": 1})
    text = describe(caught.value)
    assert "age: float_parsing" in text and "(unknown field): extra_forbidden" in text
    assert "31415926535" not in text and "27182" not in text
