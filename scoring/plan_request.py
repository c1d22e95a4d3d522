"""The campaign plan request (`POST /v1/campaigns/plan`): audience, arms and costs, objective, budget,
capacities, contact policy, exclusions and holdout. Extra fields are refused, as everywhere in v1."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from scoring.arms import ARMS, CONTACT_CHANNELS, CONTACT_COST, INCENTIVE_COST, Arm
from scoring.contract import STRICT, UserId
from scoring.segments import GRID

Channel = Literal[CONTACT_CHANNELS]
Segment = Literal[tuple(GRID.ravel().tolist())]
Cost = Annotated[float, Field(ge=0, le=1_000_000)]
MAX_AUDIENCE_IDS = 1_000_000


class Audience(BaseModel):
    """Exactly one of: a seed name, segments of the lifecycle × value grid, explicit ids, or everyone."""

    model_config = STRICT
    seed_name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")] | None = None
    segments: Annotated[list[Segment], Field(min_length=1, max_length=30)] | None = None  # type: ignore[valid-type]
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=MAX_AUDIENCE_IDS)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self):
        given = sum(x is not None for x in (self.seed_name, self.segments, self.user_ids)) + self.all
        if given != 1:
            raise ValueError("name exactly one of seed_name, segments, user_ids or all")
        return self


class ArmOffer(BaseModel):
    """An arm allowed in the plan, `incentive/channel/window`, with its costs (default: the trained ones)."""

    model_config = STRICT
    arm: Annotated[str, Field(max_length=64)]
    incentive_cost: Cost | None = None
    contact_cost: Cost | None = None

    @field_validator("arm")
    @classmethod
    def _known(cls, text: str) -> str:
        Arm.parse(text)  # ValueError naming the part not in the grid
        return text

    @property
    def parsed(self) -> Arm:
        return Arm.parse(self.arm)

    @property
    def costs(self) -> tuple[float, float]:
        arm = self.parsed
        return (INCENTIVE_COST[arm.incentive] if self.incentive_cost is None else self.incentive_cost,
                CONTACT_COST[arm.channel] if self.contact_cost is None else self.contact_cost)


class ContactPolicy(BaseModel):
    """At most this many contacts per channel per user in the contact window (30 days)."""

    model_config = STRICT
    max_per_channel: dict[Channel, Annotated[int, Field(ge=0, le=1000)]] = Field(default_factory=dict)  # type: ignore[valid-type]


class Exclusions(BaseModel):
    model_config = STRICT
    max_abuse_score: Annotated[float, Field(ge=0, le=1)] | None = None
    # Credit offers (interest-free loans) only to users whose probability of default is at most this.
    credit_max_pd: Annotated[float, Field(ge=0, le=1)] | None = None
    opt_outs: bool = True


class PlanRequest(BaseModel):
    model_config = STRICT
    audience: Audience
    arms: Annotated[list[ArmOffer], Field(min_length=1, max_length=len(ARMS))] | None = None
    objective: Literal["conversions", "value"] = "conversions"
    value_per_conversion: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    send_date: date
    budget: Annotated[float, Field(gt=0, le=1e12)]
    capacity: dict[Channel, Annotated[int, Field(ge=0, le=100_000_000)]] = Field(default_factory=dict)  # type: ignore[valid-type]
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)
    exclusions: Exclusions = Field(default_factory=Exclusions)
    holdout_share: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    # The holdout's draw; absent, a fresh one per plan (stored with the plan's request and summary).
    holdout_seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    client_key: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @field_validator("arms")
    @classmethod
    def _distinct(cls, arms: list[ArmOffer] | None) -> list[ArmOffer] | None:
        if arms is not None and len({a.arm for a in arms}) != len(arms):
            raise ValueError("each arm may be listed once")
        return arms

    def offers(self) -> list[ArmOffer]:
        return self.arms if self.arms is not None else [ArmOffer(arm=a.id) for a in ARMS]
