"""Campaign arms: incentive × contact channel × send window, and what each costs.

One definition for the simulator (which randomises each targeted user over control and up to
eight arms), the uplift model (one uplift per arm), the response endpoint and the campaign planner.
An arm is named `incentive/channel/window`, e.g. `coupon/sms/evening`; `control` is no contact.
"""

from __future__ import annotations

from dataclasses import dataclass

# "none": a contact without an incentive (a reminder), which costs only the send.
INCENTIVES = ("red_packet", "coupon", "interest_free", "none")
CONTACT_CHANNELS = ("push", "sms", "phone", "wechat")
# Send windows as operations teams plan them (local time).
SEND_WINDOWS = {"morning": "08:30-09:30", "noon": "11:30-12:30", "evening": "18:00-22:00"}
CONTROL = "control"

# Default costs in CNY: an incentive's when redeemed (a conversion), a contact's per send
# (phone agents cost far more than any message; push and WeChat are nearly free).
INCENTIVE_COST = {"red_packet": 8.0, "coupon": 5.0, "interest_free": 15.0, "none": 0.0}
CONTACT_COST = {"phone": 2.0, "sms": 0.05, "push": 0.005, "wechat": 0.005}


@dataclass(frozen=True, order=True)
class Arm:
    incentive: str
    channel: str
    window: str

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.incentive, INCENTIVES, "incentive"),
                                     (self.channel, CONTACT_CHANNELS, "channel"),
                                     (self.window, tuple(SEND_WINDOWS), "window")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {list(allowed)}")

    @property
    def id(self) -> str:
        return f"{self.incentive}/{self.channel}/{self.window}"

    @classmethod
    def parse(cls, text: str) -> Arm:
        parts = text.split("/")
        if len(parts) != 3:
            raise ValueError("an arm is incentive/channel/window, e.g. coupon/sms/evening")
        return cls(*parts)

    @property
    def contact_cost(self) -> float:
        return CONTACT_COST[self.channel]

    @property
    def incentive_cost(self) -> float:
        return INCENTIVE_COST[self.incentive]


# The whole grid, in a fixed order: 4 incentives × 4 channels × 3 windows.
ARMS: tuple[Arm, ...] = tuple(Arm(i, c, w) for i in INCENTIVES for c in CONTACT_CHANNELS for w in SEND_WINDOWS)
