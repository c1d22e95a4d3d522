"""A vectorised simulator of a consumer-finance app, with its ground truth kept apart.

Every outcome is drawn from a known probability. The loan book and its repayments are simulated
per loan after the day loop (`training.data.simulate_loans`). Churn emerges from a daily launch
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

from scoring.arms import ARMS
from training.data.simulate_draws import BASE_DRAW_P, calendar_lift, campaign_lift, draw_shares
from training.data.simulate_loans import simulate_loans
from training.data.simulate_tables import (
    OFFER_AMOUNT,
    Abuse,
    Churn,
    Events,
    Latent,
    Population,
    Profile,
    assemble,
    users_frame,
)
from training.data.arm_response import draw_traits
from training.data.simulate_campaigns import RECENT_ACTIVE_DAYS, CampaignLog, campaign_tables, is_campaign_day

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
    # Position of this world's first user in a larger base simulated in chunks (`simulate_chunks`): ids,
    # devices and IPs start past the earlier chunks', and every random stream is this chunk's own.
    first_user: int = 0


def stream(cfg: SimConfig, offset: int) -> np.random.Generator:
    """The generator of one of the simulator's random streams (seed + offset); a chunk's own past the first."""
    return np.random.default_rng(cfg.seed + offset if cfg.first_user == 0 else [cfg.seed + offset, cfg.first_user])


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


def _ring_count(ring: np.ndarray) -> int:
    return int(ring.max()) + 1 if (ring >= 0).any() else 0


def _rings(rng: np.random.Generator, n_ring_users: int) -> np.ndarray:
    sizes: list[int] = []
    while sum(sizes) < n_ring_users:
        sizes.append(int(min(60, 4 + rng.geometric(1 / 12))))
    sizes[-1] -= sum(sizes) - n_ring_users
    if sizes[-1] < 2:  # a ring of one is no ring: its member joins the ring before
        last = sizes.pop()
        sizes[-1] += last
    return np.repeat(np.arange(len(sizes)), sizes)


def _signups(rng: np.random.Generator, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ring (-1: none; the rings are the last users) and signup day."""
    n, days = cfg.users, cfg.days
    n_ring = int(round(n * cfg.abuse_share)) if n >= 200 else 0
    ring = np.full(n, -1)
    ring[n - n_ring:] = _rings(rng, n_ring) if n_ring else []
    is_ring = ring >= 0

    # Signups reach back five years; a quarter arrive inside the simulated window.
    recent = rng.random(n) < 0.25
    signup = np.where(recent, rng.integers(0, days, n), -np.minimum(1 + rng.exponential(500, n), 1800)).astype(int)
    n_rings = _ring_count(ring)
    burst = rng.integers(-150, days - 35, n_rings) if n_rings else np.array([], int)
    signup[is_ring] = burst[ring[is_ring]] + rng.integers(0, 3, is_ring.sum())
    return ring, signup


def _latent(rng: np.random.Generator, ring: np.ndarray, signup: np.ndarray) -> Latent:
    n, is_ring = len(ring), ring >= 0
    z_e = rng.normal(0, 1, n)  # engagement
    z_p = rng.normal(0, 1, n)  # price sensitivity
    z_f = rng.normal(0, 1, n)  # contact-fatigue sensitivity
    z_r_obs = rng.normal(0, 1, n)  # credit risk visible through repayment behaviour
    z_r_hidden = rng.normal(0, 1, n)  # credit risk nothing observes
    value = (rng.pareto(1.16, n) + 1) * 50.0
    z_e[is_ring] = rng.normal(-1.0, 0.5, is_ring.sum())
    return Latent(ring=ring, z_e=z_e, z_p=z_p, z_f=z_f, z_r_obs=z_r_obs, z_r_hidden=z_r_hidden, value=value,
                  signup=signup)


def _profile(rng: np.random.Generator, lat: Latent) -> Profile:
    n, is_ring, z_e = len(lat.ring), lat.ring >= 0, lat.z_e
    age = np.clip(rng.normal(34, 10, n), 18, 75).astype(int)
    age[is_ring] = np.clip(rng.normal(24, 4, is_ring.sum()), 18, 45).astype(int)
    gender = np.where(rng.random(n) < 0.48, "F", "M")
    income_band = np.clip(np.round(2.6 + 0.55 * np.log(lat.value / 50) - 0.5 * lat.z_p + rng.normal(0, 0.8, n)),
                          1, 5).astype(int)
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
    prefix = np.where(virtual, rng.choice(["170", "171", "165", "167"], n),
                      rng.choice(["138", "139", "150", "186", "135", "158"], n))
    return Profile(age=age, gender=gender, income_band=income_band, city_tier=city_tier, kyc=kyc,
                    bound_card=bound_card, credit_line=credit_line, channel=channel, virtual=virtual, prefix=prefix)


def _devices(rng: np.random.Generator, ring: np.ndarray, first_user: int) -> tuple[np.ndarray, np.ndarray]:
    """Device and IP of each user: a few families share a device, each ring a few devices and two IPs.
    A chunk's devices are numbered from 4 × its first user and its IPs from 5 × (the spans one chunk uses)."""
    n, is_ring = len(ring), ring >= 0
    dev0, ip0 = 4 * first_user, 5 * first_user
    device = np.array([f"d{i + dev0:08d}" for i in rng.permutation(n)], dtype=object)
    family = np.flatnonzero((rng.random(n) < 0.04) & ~is_ring)
    if len(family) > 1:
        device[family] = device[rng.choice(family, len(family))]
    ip_idx = np.where(rng.random(n) < 0.1, rng.integers(0, max(1, n // 500), n), rng.integers(0, n, n) + n)
    for r in range(_ring_count(ring)):
        members = np.flatnonzero(ring == r)
        devs = rng.integers(0, n, max(1, len(members) // 4)) + 3 * n
        device[members] = [f"d{d + dev0:08d}" for d in rng.choice(devs, len(members))]
        ip_idx[members] = rng.choice(rng.integers(0, n, 2) + 4 * n, len(members))
    return device, np.array([ip_address(i + ip0) for i in ip_idx], dtype=object)


def ip_address(i: int) -> str:
    """The i-th address from 10.0.0.0 on: 10.x.y.z up to 2^24, then 11.0.0.0 and on (a 10M base uses 50M)."""
    return f"{10 + (i >> 24)}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def _ids(rng: np.random.Generator, signup: np.ndarray, channel: np.ndarray, ring: np.ndarray,
         first_user: int) -> tuple[np.ndarray, np.ndarray]:
    """User ids, and inviter ids (-1: none): a ring's first member was invited by anyone earlier, the rest by
    earlier members."""
    n, is_ring = len(ring), ring >= 0
    # Ids follow signup order, as an auto-increment key would.
    order = np.lexsort((rng.random(n), signup))
    user_id = np.empty(n, dtype=np.int64)
    user_id[order] = 10_000_001 + first_user + np.arange(n)

    inviter = np.full(n, -1, dtype=np.int64)
    inv = np.flatnonzero((channel == "invite") & ~is_ring)
    earlier = order  # users sorted by signup
    pos = np.empty(n, int)
    pos[order] = np.arange(n)
    for i in inv:
        if pos[i] > 0:
            inviter[i] = user_id[earlier[rng.integers(0, pos[i])]]
    for r in range(_ring_count(ring)):
        members = np.flatnonzero(ring == r)
        members = members[np.argsort(pos[members])]
        inviter[members[0]] = user_id[earlier[rng.integers(0, max(1, pos[members[0]]))]] if pos[members[0]] else -1
        for j in range(1, len(members)):
            inviter[members[j]] = user_id[members[rng.integers(0, j)]]
    return user_id, inviter


def _users(rng: np.random.Generator, cfg: SimConfig) -> tuple[pd.DataFrame, Latent]:
    ring, signup = _signups(rng, cfg)
    lat = _latent(rng, ring, signup)
    p = _profile(rng, lat)
    device, ip = _devices(rng, ring, cfg.first_user)
    user_id, inviter = _ids(rng, signup, p.channel, ring, cfg.first_user)
    return users_frame(user_id, signup, p, inviter, device, ip), lat


def _deaths_before_window(rng: np.random.Generator, signup: np.ndarray, days: int, base: np.ndarray,
                          die_offset: np.ndarray) -> np.ndarray:
    # Before the window: survive each boundary between signup and day 0 with 1 - p_die.
    death = np.full(len(signup), NEVER)
    first = signup + np.where((days - signup) % CHURN_PERIOD_DAYS == 0, CHURN_PERIOD_DAYS,
                              (days - signup) % CHURN_PERIOD_DAYS)
    n_boundaries = np.where(first < 0, (-first + CHURN_PERIOD_DAYS - 1) // CHURN_PERIOD_DAYS, 0)
    k = rng.geometric(sigmoid(die_logit(die_offset, base)))
    return np.where(k <= n_boundaries, first + CHURN_PERIOD_DAYS * (k - 1), death)


def _churn(rng: np.random.Generator, users: pd.DataFrame, lat: Latent,
           days: int) -> tuple[Churn, np.ndarray, np.ndarray]:
    """Launch and leave parameters; also the push and SMS rates, drawn here as pushes feed the leave odds."""
    n, is_ring, signup = len(users), lat.ring >= 0, lat.signup
    bound_card, kyc = users["bound_card"].to_numpy(), users["kyc_level"].to_numpy()
    # Activity: a daily launch probability while alive; churn decisions at period boundaries.
    base = -0.8 + 0.5 * lat.z_e + 0.3 * bound_card
    trend = rng.normal(-0.12, 0.3, n)
    honey = np.where(signup >= 0, 1.5, 0.0)
    push_rate = rng.uniform(0.03, 0.2, n)
    sms_rate = rng.uniform(0.0, 0.06, n)
    channel = users["acquisition_channel"].to_numpy()
    # Paid acquisition churns more, verified and card-bound users less; fatigue from pushes adds.
    die_offset = (-2.7 + 0.25 * lat.z_f * push_rate / 0.1 - 0.7 * bound_card - 0.3 * np.log(lat.value / 50)
                  + 0.9 * (channel == "ads") + 0.5 * (channel == "partner") - 0.5 * (kyc == 2)
                  + 0.2 * (users["city_tier"].to_numpy() - 3))
    # Coupon hunters redeem the new-user offer within days and then go dormant.
    redeem = np.where(rng.random(n) < np.where(is_ring, 0.9, 0.25), signup + rng.integers(0, 3, n), -10**6)
    base[is_ring], honey[is_ring], die_offset[is_ring] = -3.0, 0.0, 3.0
    death = _deaths_before_window(rng, signup, days, base, die_offset)
    churn = Churn(base=base, trend=trend, honey=honey, die_offset=die_offset, redeem=redeem, death=death)
    return churn, push_rate, sms_rate


def _population(rng: np.random.Generator, users: pd.DataFrame, lat: Latent, days: int) -> Population:
    churn, push_rate, sms_rate = _churn(rng, users, lat, days)
    pref = rng.dirichlet([2.0, 1.5, 1.0, 1.0], len(users)) * 4
    pref[:, 3] *= np.exp(0.5 * lat.z_p)  # the price-sensitive browse the activity centre
    open_p = sigmoid(-1.5 + 0.8 * lat.z_e - 0.6 * lat.z_f)  # the contact-fatigued stop opening
    fund_p = 0.04 * np.minimum(pref[:, 1], 3)
    util = rng.beta(2, 3, len(users))
    return Population(
        lat=lat, churn=churn, is_ring=lat.ring >= 0, bound_card=users["bound_card"].to_numpy(),
        income=users["income_band"].to_numpy(), credit_line=users["credit_line"].to_numpy(),
        kyc=users["kyc_level"].to_numpy(), young=users["age"].to_numpy() < 25, push_rate=push_rate,
        sms_rate=sms_rate, pref=pref, open_p=open_p, fund_p=fund_p, repay_late=np.exp(lat.z_r_obs - 1.2),
        util=util, last_active=np.where(lat.signup < 0, np.minimum(churn.death, 0) - 1, -10**6),
    )


def _before_window(rng: np.random.Generator, pop: Population, events: Events) -> None:
    """Before the window: a signup day row and, for users who died before day 0, their last day."""
    signup, death, redeem = pop.lat.signup, pop.churn.death, pop.churn.redeem
    pre = np.flatnonzero(signup < 0)
    # The last day before leaving, unless that was the signup day itself.
    dead_pre = pre[(death[pre] <= 0) & (death[pre] - 1 > signup[pre])]
    for idx, day in ((pre, signup[pre]), (dead_pre, death[dead_pre] - 1)):
        k = len(idx)
        events.add_activity(idx, day, np.ones(k), rng.poisson(1, (k, 4)), np.zeros((k, 4)))
    red_pre = pre[redeem[pre] >= signup[pre]]
    red_pre = red_pre[redeem[red_pre] < np.minimum(death[red_pre], 0)]
    events.add_transactions(red_pre, redeem[red_pre], "offer_redeem", np.full(len(red_pre), OFFER_AMOUNT))


def _leave(rng: np.random.Generator, pop: Population, t: int) -> None:
    """At a period boundary, each user who signed up before today decides whether to leave."""
    c, signup = pop.churn, pop.lat.signup
    at_risk = np.flatnonzero((signup < t) & (c.death > t))
    logit = active_logit(c.base[at_risk], c.trend[at_risk], c.honey[at_risk], signup[at_risk], t)
    gone = at_risk[rng.random(len(at_risk)) < sigmoid(die_logit(c.die_offset[at_risk], logit))]
    c.death[gone] = t


def _activity(rng: np.random.Generator, pop: Population, t: int, events: Events) -> tuple[np.ndarray, np.ndarray]:
    """Today's launches and messages, one activity row per user with either; returns the alive and the active."""
    c, signup = pop.churn, pop.lat.signup
    alive = np.flatnonzero((signup <= t) & (t < c.death))
    a = sigmoid(active_logit(c.base[alive], c.trend[alive], c.honey[alive], signup[alive], t))
    a[pop.is_ring[alive] & (t <= c.redeem[alive])] = 0.95
    act = alive[rng.random(len(alive)) < a]
    pop.last_active[act] = t

    listed = np.flatnonzero((signup <= t) & (t < c.death + MESSAGE_LIST_GRACE_DAYS))
    push = listed[rng.random(len(listed)) < pop.push_rate[listed]]
    sms = listed[rng.random(len(listed)) < pop.sms_rate[listed]]
    flags = np.zeros((len(signup), 3), dtype=bool)
    flags[act, 0], flags[push, 1], flags[sms, 2] = True, True, True
    rows = np.flatnonzero(flags[:, 0] | flags[:, 1] | flags[:, 2])  # any(axis=1) takes ten times as long
    f = flags[rows]
    k = len(rows)
    launches = np.zeros(k, np.int16)
    launches[f[:, 0]] = 1 + rng.poisson(np.exp(0.4 * pop.lat.z_e[rows[f[:, 0]]]))
    pv = rng.poisson(launches[:, None] * pop.pref[rows])
    msg = np.zeros((k, 4), np.int8)
    msg[:, 0], msg[:, 2] = f[:, 1], f[:, 2]
    alive_row = (signup[rows] <= t) & (t < c.death[rows])
    opened = alive_row & (rng.random(k) < pop.open_p[rows])
    msg[:, 1] = msg[:, 0] * opened
    msg[:, 3] = msg[:, 2] * opened * (rng.random(k) < 0.5)
    events.add_activity(rows, np.full(k, t), launches, pv, msg)
    return alive, act


def _money(rng: np.random.Generator, pop: Population, t: int, act: np.ndarray, r: np.ndarray,
           events: Events, lift: float = 1.0) -> None:
    """Money movements on active days (r: the active users' draws, lift: the day's draw-down factor); offers."""
    fund = act[r[:, 0] < pop.fund_p[act]]
    has_line = pop.credit_line[act] > 0
    draw = act[has_line & (r[:, 1] < BASE_DRAW_P * lift)]
    rep = act[has_line & (r[:, 2] < 0.12)]
    offer = np.flatnonzero(pop.churn.redeem == t)
    offer = offer[(pop.lat.signup[offer] >= 0) & (pop.churn.death[offer] > t)]
    line, util, add = pop.credit_line, pop.util, events.add_transactions
    add(fund, t, "fund_purchase", pop.lat.value[fund] * np.exp(rng.normal(0, 0.6, len(fund))) * 20)
    add(draw, t, "loan_draw", np.round(line[draw] * util[draw] * draw_shares(rng, r[:, 1], has_line, lift), 2))
    add(rep, t, "repayment", np.round(line[rep] * util[rep] * 0.2, 2), rng.poisson(pop.repay_late[rep]))
    add(offer, t, "offer_redeem", np.full(len(offer), OFFER_AMOUNT))


def _day(rng: np.random.Generator, pop: Population, t: int, days: int, events: Events, lift: float,
         campaigns: CampaignLog) -> None:
    if is_boundary(t, days):
        _leave(rng, pop, t)
    alive, act = _activity(rng, pop, t, events)
    r = rng.random((len(act), 3))  # per active user: fund purchase, loan draw, repayment
    _money(rng, pop, t, act, r, events, lift * campaign_lift(campaigns.sends(), t))
    if is_campaign_day(t):
        eligible = alive[(t - pop.last_active[alive] <= RECENT_ACTIVE_DAYS) & (pop.lat.signup[alive] < t)]
        campaigns.send(t, eligible, len(pop.lat.signup))


def _abuse(cfg: SimConfig, users: pd.DataFrame, lat: Latent) -> Abuse:
    """Abuse: ring members are abusers with high probability, a few others with a small one."""
    rng = stream(cfg, 1)  # a generator of its own, apart from the world's
    ring = lat.ring
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
    report_day = lat.signup + rng.integers(20, 120, len(ring))
    confirmed &= report_day < cfg.days
    return Abuse(p_abuse=p_abuse, is_abuser=is_abuser, confirmed=confirmed, report_day=report_day)


def simulate(cfg: SimConfig, progress: bool = True) -> World:
    rng = stream(cfg, 0)
    users, lat = _users(rng, cfg)
    pop = _population(rng, users, lat, cfg.days)
    events = Events()
    traits = draw_traits(stream(cfg, 2), lat.z_e, lat.z_p, lat.z_f, lat.value,
                         users["age"].to_numpy(), users["city_tier"].to_numpy(), users["credit_line"].to_numpy())
    # Generators of their own, apart from the world's. Every chunk sends the same campaigns (their arms in
    # one order), the first drawing its users from the generator that drew the order, as one world does.
    order_rng = np.random.default_rng(cfg.seed + 3)
    order = order_rng.permutation(len(ARMS))
    campaigns = CampaignLog.start(traits, order, order_rng if cfg.first_user == 0 else stream(cfg, 3))
    _before_window(rng, pop, events)
    for t, lift in enumerate(tqdm(calendar_lift(cfg.start, cfg.days), desc="simulate days", disable=not progress,
                                  unit="day")):
        _day(rng, pop, t, cfg.days, events, lift, campaigns)
    book = simulate_loans(stream(cfg, 2), pop, cfg.days)
    tables, truth = assemble(cfg.start, users, lat, pop.churn, events, _abuse(cfg, users, lat), book, cfg.days,
                             cfg.first_user)
    more_tables, more_truth = campaign_tables(campaigns, users["user_id"].to_numpy(), np.datetime64(cfg.start, "D"))
    tables.update(more_tables)
    truth.update(more_truth)
    meta = {"start": cfg.start.isoformat(), "days": cfg.days, "users": cfg.users, "seed": cfg.seed,
            "churn_period_days": CHURN_PERIOD_DAYS}
    return World(tables=tables, truth=truth, meta=meta)
