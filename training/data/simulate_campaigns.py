"""Multi-arm campaigns: each randomises its users over control and eight arms of the grid.

Twice a week a campaign goes to a random share of the recently active. It draws its eight arms
as the next eight of a fixed random order of the 48, so that every few campaigns cover the grid,
and assigns each user at random: control (no contact) or one arm, each with the same share.
Every send is a row of `contacts` (opened or not); conversions and opens follow
`training.data.arm_response`, whose inputs (the users' traits, their recent contacts) are kept
in the ground truth so that any user × arm can be recomputed.

A helper of `training.data.simulate`, with a generator of its own: campaigns do not move the
other tables' draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scoring.arms import ARMS, CONTROL
from training.data.arm_response import ResponseTraits, arm_probabilities, open_probability

CAMPAIGN_WEEKDAYS = (1, 4)  # days of the week (t % 7) a campaign is sent
CAMPAIGN_REACH = 0.2  # share of the recently active each campaign targets
RECENT_ACTIVE_DAYS = 30
ARMS_PER_CAMPAIGN = 8
CONTROL_SHARE = 1 / (ARMS_PER_CAMPAIGN + 1)
FATIGUE_DAYS = 30  # contacts this recent wear an arm's effect down
# Minute of the day each window's sends start, and how many minutes it spans.
WINDOW_MINUTES = {"morning": (510, 60), "noon": (690, 60), "evening": (1080, 240)}
ARM_IDS = np.array([a.id for a in ARMS] + [CONTROL], dtype=object)  # code -1 is control


def is_campaign_day(t: int) -> bool:
    return t % 7 in CAMPAIGN_WEEKDAYS


@dataclass
class CampaignLog:
    """The campaigns so far: their rows, and every send (for the recent-contact counts)."""

    traits: ResponseTraits
    rng: np.random.Generator
    order: np.ndarray  # the arms in the order campaigns draw them
    campaigns: list[tuple[int, int, int]] = field(default_factory=list)  # id, day, arms
    assignments: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    contacts: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    @classmethod
    def start(cls, traits: ResponseTraits, order: np.ndarray, rng: np.random.Generator) -> CampaignLog:
        return cls(traits, rng, order)

    def recent_contacts(self, t: int, n: int) -> np.ndarray:
        """Contacts of each user in the FATIGUE_DAYS before day t."""
        counts = np.zeros(n, dtype=np.int16)
        for (_, day, _), (idx, *_) in zip(reversed(self.campaigns), reversed(self.contacts)):
            if day < t - FATIGUE_DAYS:
                break
            counts += np.bincount(idx, minlength=n).astype(np.int16)  # np.add.at's sum, twenty times faster
        return counts

    def sends(self) -> list[tuple[int, list[str]]]:
        """Each campaign's send day and its arms' incentives (the draw-down calendar reads them)."""
        return [(day, [ARMS[a].incentive for a in self.arms_of(k)]) for k, (_, day, _) in enumerate(self.campaigns)]

    def arms_of(self, k: int) -> np.ndarray:
        """The arms of the k-th campaign: the next ARMS_PER_CAMPAIGN of the fixed order, round the grid."""
        return self.order[np.arange(k * ARMS_PER_CAMPAIGN, (k + 1) * ARMS_PER_CAMPAIGN) % len(ARMS)]

    def next_arms(self) -> np.ndarray:
        return self.arms_of(len(self.campaigns))

    def send(self, t: int, eligible: np.ndarray, n_users: int) -> None:
        """One campaign on day t to a random share of `eligible` (user positions)."""
        rng, campaign_id = self.rng, len(self.campaigns)
        target = eligible[rng.random(len(eligible)) < CAMPAIGN_REACH]
        arms, recent = self.next_arms(), self.recent_contacts(t, n_users)[target]
        self.campaigns.append((campaign_id, t, ARMS_PER_CAMPAIGN))
        group = rng.integers(0, ARMS_PER_CAMPAIGN + 1, len(target))  # 0: control
        code = np.where(group == 0, -1, arms[np.maximum(group - 1, 0)])
        traits = self.traits.take(target)
        p0, p_arms = arm_probabilities(traits, recent, [ARMS[a] for a in arms])
        p = np.where(group == 0, p0, p_arms[np.arange(len(target)), np.maximum(group - 1, 0)])
        converted = rng.random(len(target)) < p
        self.assignments.append((np.full(len(target), campaign_id), target, code, converted, p0, p, recent))
        self._contacts(t, campaign_id, target, code, recent, traits)

    def _contacts(self, t: int, campaign_id: int, target: np.ndarray, code: np.ndarray, recent: np.ndarray,
                  traits: ResponseTraits) -> None:
        sent = code >= 0
        opened = np.zeros(len(target), dtype=bool)
        minute = np.zeros(len(target), dtype=np.int16)
        for a in np.unique(code[sent]):
            rows = np.flatnonzero(code == a)
            arm = ARMS[a]
            opened[rows] = self.rng.random(len(rows)) < open_probability(traits.take(rows), recent[rows], arm)
            first, span = WINDOW_MINUTES[arm.window]
            minute[rows] = first + self.rng.integers(0, span, len(rows))
        k = int(sent.sum())
        self.contacts.append((target[sent], np.full(k, t), minute[sent], np.full(k, campaign_id), code[sent],
                              opened[sent]))


def _cat(rows: list[tuple], j: int) -> np.ndarray:
    return np.concatenate([r[j] for r in rows]) if rows else np.array([], dtype=np.int64)


def campaign_tables(log: CampaignLog, uid: np.ndarray, start: np.datetime64,
                    ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The campaign tables of the warehouse (campaigns, assignments, contacts) and their ground truth."""
    day0 = np.datetime64(start, "D")
    campaigns = pd.DataFrame({
        "campaign_id": np.array([c[0] for c in log.campaigns], dtype=np.int32),
        "send_date": (day0 + np.array([c[1] for c in log.campaigns], dtype="timedelta64[D]")).astype("datetime64[s]"),
        "arms": np.array([c[2] for c in log.campaigns], dtype=np.int16),
    })
    a = log.assignments
    keys = {"campaign_id": _cat(a, 0).astype(np.int32), "user_id": uid[_cat(a, 1)]}
    assignments = pd.DataFrame({**keys, "arm": ARM_IDS[_cat(a, 2)].astype(str), "converted": _cat(a, 3)})
    assignments_truth = pd.DataFrame({**keys, "arm": assignments["arm"], "p_control": _cat(a, 4), "p_arm": _cat(a, 5),
                                      "recent_contacts": _cat(a, 6).astype(np.int16)})
    c = log.contacts
    when = (day0 + _cat(c, 1).astype("timedelta64[D]")).astype("datetime64[m]") + _cat(c, 2).astype("timedelta64[m]")
    order = np.lexsort((when, uid[_cat(c, 0)]))  # by user and time, as the activity table is stored
    code = _cat(c, 4)[order]
    contacts = pd.DataFrame({
        "user_id": uid[_cat(c, 0)][order], "contact_time": when[order].astype("datetime64[us]"),
        "campaign_id": _cat(c, 3)[order].astype(np.int32), "arm": ARM_IDS[code].astype(str),
        "channel": np.array([a.channel for a in ARMS], dtype=object)[code].astype(str), "opened": _cat(c, 5)[order],
    })
    users_truth = log.traits.frame()
    users_truth.insert(0, "user_id", uid)
    tables = {"campaigns": campaigns, "campaign_assignments": assignments, "contacts": contacts}
    return tables, {"campaign_assignments": assignments_truth, "campaign_users": users_truth}

