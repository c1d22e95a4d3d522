"""Request models of the v1 contract: extra fields forbidden, NaN/inf refused, ranges and batch sizes bounded.

BentoML answers a pydantic validation error with 400 and the location of the field at fault.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from scoring.arms import ARMS, CONTACT_CHANNELS, INCENTIVES
from scoring.contract import STRICT, UserId
from scoring.settings import get_settings
from scoring.vocabulary import ACQUISITION_CHANNELS, FEATURE_BOUNDS, NUMERIC_FEATURES

MAX_BATCH = get_settings().max_batch


def _bounded(name: str):
    lo, hi = FEATURE_BOUNDS.get(name, (0, None))
    return (Annotated[float | None, Field(ge=lo, le=hi)], None)


# One record of features; every field optional (missing values go down the model's learned missing branch).
FeatureRecord = create_model(
    "FeatureRecord",
    __config__=STRICT,
    user_id=(UserId | None, None),
    acquisition_channel=(Literal[ACQUISITION_CHANNELS] | None, None),
    **{name: _bounded(name) for name in NUMERIC_FEATURES},
)


class ScoreRequest(BaseModel):
    """Either user ids (features from the snapshot) or feature records, up to MAX_BATCH."""

    model_config = STRICT
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_BATCH)] | None = None
    records: Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_BATCH)] | None = None  # type: ignore[valid-type]
    reasons: Annotated[int, Field(ge=0, le=10)] = 3

    @model_validator(mode="after")
    def _one_source(self):
        if (self.user_ids is None) == (self.records is None):
            raise ValueError("send exactly one of user_ids or records")
        return self


ARM_IDS = tuple(a.id for a in ARMS)
Cost = Annotated[float, Field(ge=0, le=1e6)]


class ResponseScoreRequest(ScoreRequest):
    """Every arm's uplift (or the `arms` named) and the best arm: by uplift, or by net value when a value
    per conversion is given (uplift × value − contact cost − P(convert | arm) × incentive cost; costs
    default to scoring.arms' and may be set per incentive and per channel)."""

    arms: Annotated[list[Literal[ARM_IDS]], Field(min_length=1, max_length=len(ARM_IDS))] | None = None
    value_per_conversion: Annotated[float, Field(gt=0, le=1e6)] | None = None
    incentive_cost: dict[Literal[INCENTIVES], Cost] | None = None
    contact_cost: dict[Literal[CONTACT_CHANNELS], Cost] | None = None

    @model_validator(mode="after")
    def _costs_need_a_value(self):
        if (self.incentive_cost or self.contact_cost) and self.value_per_conversion is None:
            raise ValueError("incentive_cost and contact_cost need value_per_conversion")
        if self.arms and len(set(self.arms)) != len(self.arms):
            raise ValueError("arms: each arm once")
        return self


class LookalikeRequest(BaseModel):
    model_config = STRICT
    seed_user_ids: Annotated[list[UserId], Field(max_length=1_000_000)] | None = None
    seed_name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")] | None = None
    k: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    share: Annotated[float, Field(gt=0, le=0.5)] | None = None
    exclude_seeds: bool = True
    max_abuse_score: Annotated[float, Field(ge=0, le=1)] | None = None
    city_tiers: Annotated[list[Annotated[int, Field(ge=1, le=5)]], Field(max_length=5)] | None = None
    age_min: Annotated[int, Field(ge=18, le=100)] | None = None
    age_max: Annotated[int, Field(ge=18, le=100)] | None = None
    credit_offer: bool = False
    method: Literal["embedding", "classifier"] = "embedding"

    @model_validator(mode="after")
    def _checks(self):
        if (self.seed_user_ids is None) == (self.seed_name is None):
            raise ValueError("send exactly one of seed_user_ids or seed_name")
        if self.k is not None and self.share is not None:
            raise ValueError("send k or share, not both")
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError("age_min is above age_max")
        return self


class RequestError(ValueError):
    """A request the contract refuses, found past the request model: status and the field at fault."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status, self.field = status, field

    def __reduce__(self):  # it crosses from a batch process to the worker (service/batches.py)
        return type(self), (self.status, self.field, str(self))
