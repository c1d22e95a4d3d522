"""A vectorised simulator of a consumer-finance app, with its ground truth kept apart.

Every outcome is drawn from a known probability. Churn emerges from a daily launch
probability and a leave decision at period boundaries, whose parameters are stored in the
truth table so the oracle churn probability can be computed for any snapshot
(`truth.churn_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from tqdm import tqdm

from training.schema import CONTACT_CHANNELS, INCENTIVES

# Campaign effects: multipliers of the incentive's uplift by type and channel.
INCENTIVE_GAIN = {"red_packet": 1.0, "coupon": 0.7, "interest_free": 1.3}
CHANNEL_GAIN = {"push": 0.8, "sms": 1.0, "phone": 1.4, "wechat": 1.1}
PUT_OFF_CHANNELS = ("sms", "phone")
CAMPAIGN_EVERY_DAYS = 7
CAMPAIGN_REACH = 0.25
MESSAGE_LIST_GRACE_DAYS = 60  # marketing keeps messaging the dormant this long
# Users decide to leave at boundaries every CHURN_PERIOD_DAYS counted back from the end of the
# data, so the default snapshots fall on boundaries and the decision is not known before them.
CHURN_PERIOD_DAYS = 30
NEVER = 10**6


@dataclass(frozen=True)
class SimConfig:
    users: int = 20_000
    days: int = 180
    seed: int = 0
    start: date = date(2025, 1, 1)
    abuse_share: float = 0.03
    confirmed_share: float = 0.35


@dataclass
class World:
    """Warehouse tables (the contract) and ground-truth tables (never read by features)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def active_logit(base: np.ndarray, trend: np.ndarray, honey: np.ndarray, signup: np.ndarray, t: int) -> np.ndarray:
    """Log-odds of launching the app on day t while alive (shared with the oracle)."""
    age = t - signup
    return base + trend * (t / 30.0) + honey * np.exp(-np.clip(age, 0, None) / 10.0)


def die_logit(die_offset: np.ndarray, act_logit: np.ndarray) -> np.ndarray:
    """Log-odds of leaving at a boundary: fading users leave (shared with the oracle)."""
    return die_offset - 0.6 * act_logit


def is_boundary(t: int, days: int) -> bool:
    return (days - t) % CHURN_PERIOD_DAYS == 0


def _activity(idx, day, launches, pv, msg) -> tuple[np.ndarray, ...]:
    """One day's activity rows in compact dtypes: a million users make tens of millions of rows."""
    return (idx.astype(np.int32), day.astype(np.int16), launches.astype(np.int16), pv.astype(np.int16), msg.astype(np.int8))


def _nullable(values: np.ndarray, present: np.ndarray, dtype: str) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(dtype.lower()), ~present)


def _rings(rng: np.random.Generator, n_ring_users: int) -> np.ndarray:
    sizes: list[int] = []
    while sum(sizes) < n_ring_users:
        sizes.append(int(min(60, 4 + rng.geometric(1 / 12))))
    sizes[-1] -= sum(sizes) - n_ring_users
    if sizes[-1] < 2:
        sizes[-2] += sizes.pop()
    return np.repeat(np.arange(len(sizes)), sizes)


def _users(rng: np.random.Generator, cfg: SimConfig) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n, days = cfg.users, cfg.days
    n_ring = int(round(n * cfg.abuse_share)) if n >= 200 else 0
    ring = np.full(n, -1)
    ring[n - n_ring:] = _rings(rng, n_ring) if n_ring else []
    is_ring = ring >= 0

    # Signups reach back five years; a quarter arrive inside the simulated window.
    recent = rng.random(n) < 0.25
    signup = np.where(recent, rng.integers(0, days, n), -np.minimum(1 + rng.exponential(500, n), 1800)).astype(int)
    n_rings = ring.max() + 1 if n_ring else 0
    burst = rng.integers(-150, days - 35, n_rings) if n_rings else np.array([], int)
    signup[is_ring] = burst[ring[is_ring]] + rng.integers(0, 3, is_ring.sum())

    z_e = rng.normal(0, 1, n)  # engagement
    z_p = rng.normal(0, 1, n)  # price sensitivity
    z_f = rng.normal(0, 1, n)  # contact-fatigue sensitivity
    z_r_obs = rng.normal(0, 1, n)  # credit risk visible through repayment behaviour
    z_r_hidden = rng.normal(0, 1, n)  # credit risk nothing observes
    value = (rng.pareto(1.16, n) + 1) * 50.0
    z_e[is_ring] = rng.normal(-1.0, 0.5, is_ring.sum())

    age = np.clip(rng.normal(34, 10, n), 18, 75).astype(int)
    age[is_ring] = np.clip(rng.normal(24, 4, is_ring.sum()), 18, 45).astype(int)
    gender = np.where(rng.random(n) < 0.48, "F", "M")
    income_band = np.clip(np.round(2.6 + 0.55 * np.log(value / 50) - 0.5 * z_p + rng.normal(0, 0.8, n)), 1, 5).astype(int)
    city_tier = np.clip(np.round(3 - 0.4 * (income_band - 3) + rng.normal(0, 1.0, n)), 1, 5).astype(int)
    kyc = np.where(rng.random(n) < sigmoid(0.5 + 0.6 * z_e), np.where(rng.random(n) < 0.5, 2, 1), 0)
    kyc[is_ring] = np.where(rng.random(is_ring.sum()) < 0.7, 1, 0)
    bound_card = rng.random(n) < sigmoid(0.2 + 0.8 * z_e + 0.3 * (kyc > 0))
    bound_card[is_ring] = rng.random(is_ring.sum()) < 0.2
    credit_line = np.where(kyc > 0, np.round(2000 * income_band * np.exp(rng.normal(0, 0.4, n)), -2), 0.0)

    channel = rng.choice(["organic", "app_store", "ads", "partner", "invite"], n, p=[0.3, 0.25, 0.2, 0.13, 0.12])
    channel[is_ring] = "invite"
    virtual = rng.random(n) < 0.04
    virtual[is_ring] = rng.random(is_ring.sum()) < 0.75
    prefix = np.where(virtual, rng.choice(["170", "171", "165", "167"], n), rng.choice(["138", "139", "150", "186", "135", "158"], n))

    device = np.array([f"d{i:08d}" for i in rng.permutation(n)], dtype=object)
    family = np.flatnonzero((rng.random(n) < 0.04) & ~is_ring)
    if len(family) > 1:
        device[family] = device[rng.choice(family, len(family))]
    ip_idx = np.where(rng.random(n) < 0.1, rng.integers(0, max(1, n // 500), n), rng.integers(0, n, n) + n)
    for r in range(n_rings):
        members = np.flatnonzero(ring == r)
        devs = rng.integers(0, n, max(1, len(members) // 4)) + 3 * n
        device[members] = [f"d{d:08d}" for d in rng.choice(devs, len(members))]
        ip_idx[members] = rng.choice(rng.integers(0, n, 2) + 4 * n, len(members))
    ip = np.array([f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in ip_idx], dtype=object)

    # Ids follow signup order, as an auto-increment key would.
    order = np.lexsort((rng.random(n), signup))
    user_id = np.empty(n, dtype=np.int64)
    user_id[order] = 10_000_001 + np.arange(n)

    inviter = np.full(n, -1, dtype=np.int64)
    inv = np.flatnonzero((channel == "invite") & ~is_ring)
    earlier = order  # users sorted by signup
    pos = np.empty(n, int)
    pos[order] = np.arange(n)
    for i in inv:
        if pos[i] > 0:
            inviter[i] = user_id[earlier[rng.integers(0, pos[i])]]
    for r in range(n_rings):
        members = np.flatnonzero(ring == r)
        members = members[np.argsort(pos[members])]
        inviter[members[0]] = user_id[earlier[rng.integers(0, max(1, pos[members[0]]))]] if pos[members[0]] else -1
        for j in range(1, len(members)):
            inviter[members[j]] = user_id[members[rng.integers(0, j)]]

    users = pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup,
            "age": age.astype(np.int16),
            "gender": gender,
            "city_tier": city_tier.astype(np.int16),
            "acquisition_channel": channel,
            "inviter_id": _nullable(inviter, inviter > 0, "Int64"),
            "device_id": device.astype(str),
            "ip": ip.astype(str),
            "phone_prefix": prefix,
            "is_virtual_carrier": virtual,
            "income_band": income_band.astype(np.int16),
            "kyc_level": kyc.astype(np.int16),
            "bound_card": bound_card,
            "credit_line": credit_line,
        }
    )
    latent = dict(
        ring=ring, z_e=z_e, z_p=z_p, z_f=z_f, z_r_obs=z_r_obs, z_r_hidden=z_r_hidden, value=value, signup=signup
    )
    return users, latent


def simulate(cfg: SimConfig, progress: bool = True) -> World:
    rng = np.random.default_rng(cfg.seed)
    users, L = _users(rng, cfg)
    n, days = cfg.users, cfg.days
    ring, z_e, z_p, z_f, value, signup = L["ring"], L["z_e"], L["z_p"], L["z_f"], L["value"], L["signup"]
    is_ring = ring >= 0
    bound_card = users["bound_card"].to_numpy()
    income = users["income_band"].to_numpy()
    credit_line = users["credit_line"].to_numpy()
    kyc = users["kyc_level"].to_numpy()
    young = users["age"].to_numpy() < 25
    uid = users["user_id"].to_numpy()

    # Activity: a daily launch probability while alive; churn decisions at period boundaries.
    base = -0.8 + 0.5 * z_e + 0.3 * bound_card
    trend = rng.normal(-0.12, 0.3, n)
    honey = np.where(signup >= 0, 1.5, 0.0)
    push_rate = rng.uniform(0.03, 0.2, n)
    sms_rate = rng.uniform(0.0, 0.06, n)
    channel = users["acquisition_channel"].to_numpy()
    # Paid acquisition churns more, verified and card-bound users less; fatigue from pushes adds.
    die_offset = (-2.7 + 0.25 * z_f * push_rate / 0.1 - 0.7 * bound_card - 0.3 * np.log(value / 50)
                  + 0.9 * (channel == "ads") + 0.5 * (channel == "partner") - 0.5 * (kyc == 2)
                  + 0.2 * (users["city_tier"].to_numpy() - 3))
    # Coupon hunters redeem the new-user offer within days and then go dormant.
    redeem = np.where(rng.random(n) < np.where(is_ring, 0.9, 0.25), signup + rng.integers(0, 3, n), -10**6)
    base[is_ring], honey[is_ring], die_offset[is_ring] = -3.0, 0.0, 3.0

    # Before the window: survive each boundary between signup and day 0 with 1 - p_die.
    death = np.full(n, NEVER)
    first = signup + np.where((days - signup) % CHURN_PERIOD_DAYS == 0, CHURN_PERIOD_DAYS, (days - signup) % CHURN_PERIOD_DAYS)
    n_boundaries = np.where(first < 0, (-first + CHURN_PERIOD_DAYS - 1) // CHURN_PERIOD_DAYS, 0)
    k = rng.geometric(sigmoid(die_logit(die_offset, base)))
    death = np.where(k <= n_boundaries, first + CHURN_PERIOD_DAYS * (k - 1), death)

    pref = rng.dirichlet([2.0, 1.5, 1.0, 1.0], n) * 4
    pref[:, 3] *= np.exp(0.5 * z_p)  # the price-sensitive browse the activity centre
    open_p = sigmoid(-1.5 + 0.8 * z_e - 0.6 * z_f)  # the contact-fatigued stop opening
    fund_p = 0.04 * np.minimum(pref[:, 1], 3)
    repay_late = np.exp(L["z_r_obs"] - 1.2)
    util = rng.beta(2, 3, n)

    act_rows, txn_rows, loan_rows, assign_rows, camp_rows = [], [], [], [], []
    last_active = np.where(signup < 0, np.minimum(death, 0) - 1, -10**6)

    # Before the window: a signup day row and, for users who died before day 0, their last day.
    pre = np.flatnonzero(signup < 0)
    # The last day before leaving, unless that was the signup day itself.
    dead_pre = pre[(death[pre] <= 0) & (death[pre] - 1 > signup[pre])]
    for idx, day in ((pre, signup[pre]), (dead_pre, death[dead_pre] - 1)):
        k = len(idx)
        act_rows.append(_activity(idx, day, np.ones(k), rng.poisson(1, (k, 4)), np.zeros((k, 4))))
    red_pre = pre[redeem[pre] >= signup[pre]]
    red_pre = red_pre[redeem[red_pre] < np.minimum(death[red_pre], 0)]
    txn_rows.append((red_pre, redeem[red_pre], np.full(len(red_pre), 4), np.full(len(red_pre), 20.0), np.full(len(red_pre), -1)))

    campaign_id = 0
    for t in tqdm(range(days), desc="simulate days", disable=not progress, unit="day"):
        if is_boundary(t, days):
            at_risk = np.flatnonzero((signup < t) & (death > t))
            logit = active_logit(base[at_risk], trend[at_risk], honey[at_risk], signup[at_risk], t)
            gone = at_risk[rng.random(len(at_risk)) < sigmoid(die_logit(die_offset[at_risk], logit))]
            death[gone] = t
        alive = np.flatnonzero((signup <= t) & (t < death))
        a = sigmoid(active_logit(base[alive], trend[alive], honey[alive], signup[alive], t))
        a[is_ring[alive] & (t <= redeem[alive])] = 0.95
        act = alive[rng.random(len(alive)) < a]
        last_active[act] = t

        listed = np.flatnonzero((signup <= t) & (t < death + MESSAGE_LIST_GRACE_DAYS))
        push = listed[rng.random(len(listed)) < push_rate[listed]]
        sms = listed[rng.random(len(listed)) < sms_rate[listed]]
        flags = np.zeros((n, 3), dtype=bool)
        flags[act, 0], flags[push, 1], flags[sms, 2] = True, True, True
        rows = np.flatnonzero(flags.any(axis=1))
        f = flags[rows]
        k = len(rows)
        launches = np.zeros(k, np.int16)
        launches[f[:, 0]] = 1 + rng.poisson(np.exp(0.4 * z_e[rows[f[:, 0]]]))
        pv = rng.poisson(launches[:, None] * pref[rows])
        msg = np.zeros((k, 4), np.int8)
        msg[:, 0], msg[:, 2] = f[:, 1], f[:, 2]
        alive_row = (signup[rows] <= t) & (t < death[rows])
        opened = alive_row & (rng.random(k) < open_p[rows])
        msg[:, 1] = msg[:, 0] * opened
        msg[:, 3] = msg[:, 2] * opened * (rng.random(k) < 0.5)
        act_rows.append(_activity(rows, np.full(k, t), launches, pv, msg))

        # Money movements happen on active days.
        r = rng.random((len(act), 4))
        fund = act[r[:, 0] < fund_p[act]]
        has_line = credit_line[act] > 0
        draw = act[has_line & (r[:, 1] < 0.02)]
        rep = act[has_line & (r[:, 2] < 0.12)]
        offer = np.flatnonzero(redeem == t)
        offer = offer[(signup[offer] >= 0) & (death[offer] > t)]
        txn_rows.append((fund, np.full(len(fund), t), np.zeros(len(fund), int),
                         value[fund] * np.exp(rng.normal(0, 0.6, len(fund))) * 20, np.full(len(fund), -1)))
        txn_rows.append((draw, np.full(len(draw), t), np.full(len(draw), 2),
                         np.round(credit_line[draw] * util[draw] * rng.uniform(0.5, 1.0, len(draw)), 2), np.full(len(draw), -1)))
        txn_rows.append((rep, np.full(len(rep), t), np.full(len(rep), 3),
                         np.round(credit_line[rep] * util[rep] * 0.2, 2), rng.poisson(repay_late[rep])))
        txn_rows.append((offer, np.full(len(offer), t), np.full(len(offer), 4), np.full(len(offer), 20.0), np.full(len(offer), -1)))

        apply = act[(kyc[act] > 0) & (r[:, 3] < 0.01)]
        pd_true = sigmoid(
            -2.7 + 0.7 * L["z_r_obs"][apply] + 0.35 * L["z_r_hidden"][apply] + 0.25 * (3 - income[apply])
            + 0.4 * young[apply] - 0.3 * bound_card[apply] + 1.2 * (util[apply] - 0.4)
            - 0.3 * z_e[apply]
        )
        loan_rows.append((apply, np.full(len(apply), t), np.round(credit_line[apply] * rng.uniform(0.1, 0.5, len(apply)), 2),
                          pd_true, rng.random(len(apply)) < pd_true))

        if t % CAMPAIGN_EVERY_DAYS == 3:
            eligible = alive[(t - last_active[alive] <= 30) & (signup[alive] < t)]
            target = eligible[rng.random(len(eligible)) < CAMPAIGN_REACH]
            incentive = INCENTIVES[campaign_id % len(INCENTIVES)]
            channel = CONTACT_CHANNELS[rng.integers(0, len(CONTACT_CHANNELS))]
            camp_rows.append((campaign_id, t, incentive, channel, int(rng.integers(8, 22))))
            treat = rng.random(len(target)) < 0.5
            # Engaged, valuable users convert anyway; the price-sensitive convert because of the incentive.
            p_c = sigmoid(-4.6 + 1.1 * z_e[target] + 0.45 * np.log(value[target] / 50))
            gain = (0.16 * sigmoid(3.0 * (z_p[target] - 1.0)) * sigmoid(-z_e[target])
                    * INCENTIVE_GAIN[incentive] * CHANNEL_GAIN[channel])
            put_off = (z_f[target] > 1.6) & (channel in PUT_OFF_CHANNELS)
            p_t = np.where(put_off, p_c * 0.3, np.clip(p_c + gain, 0, 0.95))
            conv = rng.random(len(target)) < np.where(treat, p_t, p_c)
            assign_rows.append((np.full(len(target), campaign_id), target, treat, conv, p_t, p_c))
            campaign_id += 1

    return _assemble(cfg, users, L, act_rows, txn_rows, loan_rows, assign_rows, camp_rows,
                     dict(base=base, trend=trend, honey=honey, die_offset=die_offset, death=death, redeem=redeem, uid=uid))


def _day_to_date(start: np.datetime64, day: np.ndarray) -> np.ndarray:
    return (start + day.astype("timedelta64[D]")).astype("datetime64[s]")


def _assemble(cfg, users, L, act_rows, txn_rows, loan_rows, assign_rows, camp_rows, P) -> World:
    start = np.datetime64(cfg.start, "D")
    uid = P["uid"]
    rng = np.random.default_rng(cfg.seed + 1)
    world = World(meta={"start": cfg.start.isoformat(), "days": cfg.days, "users": cfg.users, "seed": cfg.seed,
                        "churn_period_days": CHURN_PERIOD_DAYS})

    users_out = users.drop(columns="signup_day")
    users_out.insert(1, "signup_date", _day_to_date(start, users["signup_day"].to_numpy()))
    world.tables["users"] = users_out

    idx = np.concatenate([r[0] for r in act_rows])
    day = np.concatenate([r[1] for r in act_rows])
    launches = np.concatenate([r[2] for r in act_rows])
    pv = np.concatenate([r[3] for r in act_rows])
    msg = np.concatenate([r[4] for r in act_rows])
    act = pd.DataFrame({"user_id": uid[idx], "activity_date": _day_to_date(start, day), "launches": launches.astype(np.int16)})
    for j, col in enumerate(["pv_loans", "pv_wealth", "pv_credit_card", "pv_activity"]):
        act[col] = pv[:, j].astype(np.int16)
    for j, col in enumerate(["push_received", "push_opened", "sms_received", "sms_opened"]):
        act[col] = msg[:, j].astype(np.int16)
    world.tables["daily_activity"] = act

    t_idx = np.concatenate([r[0] for r in txn_rows])
    t_type = np.concatenate([r[2] for r in txn_rows])
    late = np.concatenate([r[4] for r in txn_rows])
    txn = pd.DataFrame(
        {
            "txn_id": np.arange(1, len(t_idx) + 1, dtype=np.int64),
            "user_id": uid[t_idx],
            "txn_date": _day_to_date(start, np.concatenate([r[1] for r in txn_rows])),
            "txn_type": np.array(["fund_purchase", "fund_redeem", "loan_draw", "repayment", "offer_redeem"])[t_type],
            "amount": np.round(np.concatenate([r[3] for r in txn_rows]), 2),
            "days_late": _nullable(late, late >= 0, "Int16"),
        }
    )
    world.tables["transactions"] = txn

    world.tables["campaigns"] = pd.DataFrame(
        {
            "campaign_id": np.array([c[0] for c in camp_rows], dtype=np.int32),
            "send_date": _day_to_date(start, np.array([c[1] for c in camp_rows])),
            "incentive": [c[2] for c in camp_rows],
            "channel": [c[3] for c in camp_rows],
            "send_hour": np.array([c[4] for c in camp_rows], dtype=np.int16),
        }
    )
    a_cid = np.concatenate([a[0] for a in assign_rows]).astype(np.int32)
    a_uid = uid[np.concatenate([a[1] for a in assign_rows])]
    world.tables["campaign_assignments"] = pd.DataFrame(
        {
            "campaign_id": a_cid,
            "user_id": a_uid,
            "treatment": np.concatenate([a[2] for a in assign_rows]),
            "converted": np.concatenate([a[3] for a in assign_rows]),
        }
    )
    world.truth["campaign_assignments"] = pd.DataFrame(
        {
            "campaign_id": a_cid,
            "user_id": a_uid,
            "p_treated": np.concatenate([a[4] for a in assign_rows]),
            "p_control": np.concatenate([a[5] for a in assign_rows]),
        }
    )

    l_idx = np.concatenate([r[0] for r in loan_rows])
    l_day = np.concatenate([r[1] for r in loan_rows])
    app_id = np.arange(1, len(l_idx) + 1, dtype=np.int64)
    world.tables["loan_applications"] = pd.DataFrame(
        {
            "application_id": app_id,
            "user_id": uid[l_idx],
            "applied_date": _day_to_date(start, l_day),
            "amount": np.concatenate([r[2] for r in loan_rows]),
            "default_90d": np.concatenate([r[4] for r in loan_rows]),
            "outcome_date": _day_to_date(start, l_day + 90),
        }
    )
    world.truth["loan_applications"] = pd.DataFrame({"application_id": app_id, "pd": np.concatenate([r[3] for r in loan_rows])})

    # Abuse: ring members are abusers with high probability, a few others with a small one.
    ring = L["ring"]
    shared_device = users["device_id"].duplicated(keep=False).to_numpy()
    virtual = users["is_virtual_carrier"].to_numpy()
    invited = (users["acquisition_channel"] == "invite").to_numpy()
    p_abuse = np.where(
        ring >= 0,
        rng.uniform(0.85, 0.98, len(ring)),
        sigmoid(-6.5 + 1.2 * virtual + 0.8 * invited + 1.0 * shared_device),
    )
    is_abuser = rng.random(len(ring)) < p_abuse
    confirmed = is_abuser & (rng.random(len(ring)) < cfg.confirmed_share)
    report_day = L["signup"] + rng.integers(20, 120, len(ring))
    confirmed &= report_day < cfg.days
    world.tables["abuse_reports"] = pd.DataFrame(
        {"user_id": uid[confirmed], "reported_date": _day_to_date(start, report_day[confirmed])}
    )
    world.truth["users"] = pd.DataFrame(
        {
            "user_id": uid,
            "ring_id": ring,
            "p_abuse": p_abuse,
            "is_abuser": is_abuser,
            "signup_day": L["signup"],
            "active_base": P["base"],
            "active_trend": P["trend"],
            "active_honey": P["honey"],
            "die_offset": P["die_offset"],
            "death_day": P["death"],
            "redeem_day": P["redeem"],
            "value": L["value"],
            "z_engagement": L["z_e"],
            "z_price": L["z_p"],
            "z_fatigue": L["z_f"],
        }
    )
    return world
