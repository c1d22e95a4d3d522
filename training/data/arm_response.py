"""The true response to a campaign arm: P(convert | control) and P(convert | arm) for any user × arm.

One pure function of each user's latent response traits (a ground-truth table, `campaign_users`)
and the contacts they had in the 30 days before the send (observable, from `contacts`). The
simulator draws conversions from it and the oracle (uplift figures, the planner's oracle plan)
computes every arm's truth from it, so the two cannot disagree.

The effect of an arm multiplies what each part does for the user: the incentive (price-sensitive
users answer money; interest-free vouchers only borrowers; a plain reminder a little for everyone),
the channel (some answer calls, some only open push), the send window (commuters read in the
morning, most in the evening) and fatigue (each recent contact wears the effect down). Very
contact-averse users are put off by calls and SMS: their conversion falls below control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from scoring.arms import CONTACT_CHANNELS, SEND_WINDOWS, Arm

WINDOWS = tuple(SEND_WINDOWS)
GAIN = 0.25  # the largest uplift scale, for a price-sensitive, disengaged user
OFF_WINDOW = 0.4  # a send outside the user's preferred window keeps this share of its effect
PUT_OFF_CHANNELS = ("sms", "phone")
PUT_OFF_FACTOR = 0.5  # P(convert) of a put-off user relative to control
MAX_P = 0.95
OPEN_SCALE = 0.3  # P(open) of a fresh contact at responsiveness 1 in the preferred window


@dataclass(frozen=True)
class ResponseTraits:
    """Per-user latent response parameters (one array per field, aligned with the users)."""

    base_logit: np.ndarray  # log-odds of converting uncontacted
    gain: np.ndarray  # uplift scale
    price: np.ndarray  # price sensitivity in [0, 1]
    borrower: np.ndarray  # 1.0 with a credit line (interest-free vouchers matter), else 0.0
    reach_push: np.ndarray  # responsiveness per channel
    reach_sms: np.ndarray
    reach_phone: np.ndarray
    reach_wechat: np.ndarray
    window: np.ndarray  # preferred send window: index into WINDOWS
    fatigue: np.ndarray  # effect decay per contact in the last 30 days
    put_off: np.ndarray  # bool: calls and SMS lower this user's conversion

    def take(self, idx: np.ndarray) -> ResponseTraits:
        return ResponseTraits(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> ResponseTraits:
        return cls(**{f.name: df[f.name].to_numpy() for f in fields(cls)})

    def reach(self, channel: str) -> np.ndarray:
        return getattr(self, f"reach_{channel}")


def incentive_factor(t: ResponseTraits, incentive: str) -> np.ndarray:
    """How much of the user's gain an incentive unlocks."""
    if incentive == "none":
        return np.full(len(t.price), 0.25)
    scale = {"red_packet": 1.0, "coupon": 0.7, "interest_free": 1.4}[incentive]
    factor = scale * t.price
    return factor * (0.3 + 0.7 * t.borrower) if incentive == "interest_free" else factor


def window_match(t: ResponseTraits, window: str) -> np.ndarray:
    return np.where(t.window == WINDOWS.index(window), 1.0, OFF_WINDOW)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def arm_probabilities(t: ResponseTraits, recent_contacts: np.ndarray,
                      arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray]:
    """P(convert | control) of shape (n,) and P(convert | arm) of shape (n, len(arms))."""
    p0 = sigmoid(t.base_logit)
    worn = np.exp(-t.fatigue * recent_contacts)
    out = np.empty((len(p0), len(arms)))
    for j, arm in enumerate(arms):
        lift = t.gain * incentive_factor(t, arm.incentive) * t.reach(arm.channel) * window_match(t, arm.window) * worn
        p = np.minimum(p0 + lift, MAX_P)
        out[:, j] = np.where(t.put_off & (arm.channel in PUT_OFF_CHANNELS), p0 * PUT_OFF_FACTOR, p)
    return p0, out


def open_probability(t: ResponseTraits, recent_contacts: np.ndarray, arm: Arm) -> np.ndarray:
    """P(a send is opened: a push or link tapped, a call answered); what contacts features can learn from."""
    p = OPEN_SCALE * t.reach(arm.channel) * np.where(t.window == WINDOWS.index(arm.window), 1.0, 0.5)
    return np.minimum(p * np.exp(-0.5 * t.fatigue * recent_contacts), MAX_P)


# Channel responsiveness of the three kinds of user (push, sms, phone, wechat).
REACH_PROFILES = {"caller": (0.4, 0.8, 1.6, 0.6), "app": (1.3, 0.4, 0.15, 0.9), "messenger": (0.6, 1.0, 0.4, 1.3)}


def draw_traits(rng: np.random.Generator, z_e: np.ndarray, z_p: np.ndarray, z_f: np.ndarray, value: np.ndarray,
                age: np.ndarray, city_tier: np.ndarray, credit_line: np.ndarray) -> ResponseTraits:
    """Each user's traits from the simulator's latent engagement, price and fatigue scores and profile."""
    n = len(z_e)
    # Older users answer calls; the young live in the app.
    caller = sigmoid((age - 45) / 6.0) * 0.6
    app = (1 - caller) * sigmoid((35 - age) / 6.0)
    kind = (rng.random(n)[:, None] > np.cumsum(np.stack([caller, app], axis=1), axis=1)).sum(axis=1)
    profiles = np.array(list(REACH_PROFILES.values()))[kind] * np.exp(rng.normal(0, 0.3, (n, len(CONTACT_CHANNELS))))
    commuter = (city_tier <= 2) & (age < 50)
    p_window = np.where(commuter[:, None], [0.6, 0.15, 0.25], [0.15, 0.25, 0.6])
    window = (rng.random(n)[:, None] > np.cumsum(p_window, axis=1)[:, :-1]).sum(axis=1)
    reach = {f"reach_{c}": profiles[:, j] for j, c in enumerate(CONTACT_CHANNELS)}
    return ResponseTraits(
        # Engaged, valuable users convert anyway; the disengaged and price-sensitive because of the offer.
        base_logit=-4.6 + 1.1 * z_e + 0.45 * np.log(value / 50),
        gain=GAIN * sigmoid(-z_e), price=sigmoid(3.0 * (z_p - 1.0)), borrower=(credit_line > 0).astype(float),
        **reach, window=window.astype(np.int8), fatigue=0.12 * np.exp(0.6 * z_f), put_off=z_f > 1.6,
    )

