"""The state `training.data.simulate` passes between its stages, and the tables it is assembled into.

Latent traits, the churn model and the event rows collected day by day become the warehouse
tables and the ground-truth tables here.

A helper of `training.data.simulate`, the public module: that module imports this one, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from training.data.schema import TXN_TYPES

# Transaction types, coded by their index while simulating.
OFFER_AMOUNT = 20.0


@dataclass(frozen=True)
class Latent:
    """Per-user traits drawn with the users; the warehouse records none of them."""

    ring: np.ndarray  # ring index, -1 outside any ring
    z_e: np.ndarray  # engagement
    z_p: np.ndarray  # price sensitivity
    z_f: np.ndarray  # contact-fatigue sensitivity
    z_r_obs: np.ndarray  # credit risk visible through repayment behaviour
    z_r_hidden: np.ndarray  # credit risk nothing observes
    value: np.ndarray
    signup: np.ndarray  # signup day; negative before the simulated window


@dataclass(frozen=True)
class Churn:
    """Each user's launch and leave parameters: the oracle recomputes churn from them (truth table)."""

    base: np.ndarray
    trend: np.ndarray
    honey: np.ndarray
    die_offset: np.ndarray
    redeem: np.ndarray  # day the new-user offer is redeemed, far in the past for those who never do
    death: np.ndarray  # first day gone (NEVER for those who stay); set at each boundary


@dataclass(frozen=True)
class Profile:
    """What the users table records of a user besides ids, devices and signup."""

    age: np.ndarray
    gender: np.ndarray
    income_band: np.ndarray
    city_tier: np.ndarray
    kyc: np.ndarray
    bound_card: np.ndarray
    credit_line: np.ndarray
    channel: np.ndarray
    virtual: np.ndarray
    prefix: np.ndarray


@dataclass(frozen=True)
class Population:
    """Each user as the day loop reads them; of these it updates `churn.death` and `last_active` in place.

    The observed attributes are the users table's columns, in its dtypes.
    """

    lat: Latent
    churn: Churn
    is_ring: np.ndarray
    bound_card: np.ndarray
    income: np.ndarray
    credit_line: np.ndarray
    kyc: np.ndarray
    young: np.ndarray
    push_rate: np.ndarray  # daily chance of a push while on the message list
    sms_rate: np.ndarray
    pref: np.ndarray  # page views per launch: loans, wealth, credit card, activity centre
    open_p: np.ndarray  # chance of opening a message
    fund_p: np.ndarray  # chance of a fund purchase on an active day
    repay_late: np.ndarray  # mean days late of a repayment
    util: np.ndarray  # share of the credit line drawn
    last_active: np.ndarray  # day of the last launch


@dataclass(frozen=True)
class Abuse:
    """Who abuses the app, and which abusers are reported before the data ends."""

    p_abuse: np.ndarray
    is_abuser: np.ndarray
    confirmed: np.ndarray
    report_day: np.ndarray


@dataclass(frozen=True)
class LoanBook:
    """The loan book (`training.data.simulate_loans`): one row per loan; the instalment arrays are
    loans × the longest term, `recorded` marking the instalments the warehouse holds."""

    user: np.ndarray  # user index
    applied: np.ndarray  # day of application and disbursement
    amount: np.ndarray
    term: np.ndarray  # months
    instalment: np.ndarray  # scheduled monthly amount
    due: np.ndarray  # day each instalment falls due
    amount_due: np.ndarray  # scheduled amount plus the shortfall of a partial payment before
    amount_paid: np.ndarray  # paid before the data ends
    paid: np.ndarray  # day paid
    settled: np.ndarray  # paid before the data ends
    balance: np.ndarray  # owed on the loan when the instalment falls due, before its payment
    recorded: np.ndarray  # fell due before the data ended and before any charge-off
    default_day: np.ndarray  # day 90 days past due was reached (truth; far future: never)
    pd: np.ndarray  # true probability of 90+ days past due within 12 months (truth)
    shock: np.ndarray  # distress at the application (truth)


@dataclass
class Events:
    """Rows collected while simulating: per table, one tuple of parallel arrays per batch."""

    activity: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    transactions: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def add_activity(self, idx: np.ndarray, day: np.ndarray, launches: np.ndarray, pv: np.ndarray,
                     msg: np.ndarray) -> None:
        """One batch of activity rows in compact dtypes: a million users make tens of millions of rows."""
        self.activity.append((idx.astype(np.int32), day.astype(np.int16), launches.astype(np.int16),
                              pv.astype(np.int16), msg.astype(np.int8)))

    def add_transactions(self, idx: np.ndarray, day: int | np.ndarray, txn_type: str, amount: np.ndarray,
                         late: np.ndarray | None = None) -> None:
        """Transactions of one type; `day` is one day for all or one per row, `late` only for repayments."""
        k = len(idx)
        self.transactions.append((idx, np.full(k, day), np.full(k, TXN_TYPES.index(txn_type)), amount,
                                  np.full(k, -1) if late is None else late))


def _nullable(values: np.ndarray, present: np.ndarray, dtype: str) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(dtype.lower()), ~present)


def _day_to_date(start: np.datetime64, day: np.ndarray) -> np.ndarray:
    return (start + day.astype("timedelta64[D]")).astype("datetime64[s]")


def _cat(rows: list[tuple], j: int) -> np.ndarray:
    """Column j of every batch, end to end."""
    return np.concatenate([r[j] for r in rows])


def users_frame(user_id: np.ndarray, signup: np.ndarray, p: Profile, inviter: np.ndarray, device: np.ndarray,
                ip: np.ndarray) -> pd.DataFrame:
    """The users as the simulator keeps them: with the signup day, not yet its date."""
    return pd.DataFrame(
        {
            "user_id": user_id,
            "signup_day": signup,
            "age": p.age.astype(np.int16),
            "gender": p.gender,
            "city_tier": p.city_tier.astype(np.int16),
            "acquisition_channel": p.channel,
            "inviter_id": _nullable(inviter, inviter > 0, "Int64"),
            "device_id": device.astype(str),
            "ip": ip.astype(str),
            "phone_prefix": p.prefix,
            "is_virtual_carrier": p.virtual,
            "income_band": p.income_band.astype(np.int16),
            "kyc_level": p.kyc.astype(np.int16),
            "bound_card": p.bound_card,
            "credit_line": p.credit_line,
        }
    )


def _users_table(users: pd.DataFrame, start: np.datetime64) -> pd.DataFrame:
    out = users.drop(columns="signup_day")
    out.insert(1, "signup_date", _day_to_date(start, users["signup_day"].to_numpy()))
    return out


def _activity_table(rows: list[tuple], uid: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    idx, day, launches, pv, msg = (_cat(rows, j) for j in range(5))
    # Stored by user and day, as a warehouse clusters its largest table: the features' aggregation by user
    # reads it twice as fast as rows in day order (and the file is half the size).
    order = _by_user_and_day(rows, uid)
    if order is None:
        order = np.lexsort((day, uid[idx]))
    idx, day, launches, pv, msg = idx[order], day[order], launches[order], pv[order], msg[order]
    act = pd.DataFrame({"user_id": uid[idx], "activity_date": _day_to_date(start, day),
                        "launches": launches.astype(np.int16)})
    for j, col in enumerate(["pv_loans", "pv_wealth", "pv_credit_card", "pv_activity"]):
        act[col] = pv[:, j].astype(np.int16)
    for j, col in enumerate(["push_received", "push_opened", "sms_received", "sms_opened"]):
        act[col] = msg[:, j].astype(np.int16)
    return act


def _by_user_and_day(rows: list[tuple], uid: np.ndarray) -> np.ndarray | None:
    """The order `np.lexsort((day, uid[idx]))` gives the activity rows, as a counting sort: a batch holds a
    user once (its positions ascending) and each user's batches come in day order, so a row's place is its
    user's first place in id order plus the user's rows in earlier batches. A third of the lexsort's time at
    18M rows a chunk; None when the batches are not so (the caller sorts)."""
    n = len(uid)
    seen = np.zeros(n, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min)
    earlier = []
    for idx, day, *_ in rows:
        day = np.broadcast_to(day, idx.shape).astype(np.int64)
        if np.any(idx[1:] <= idx[:-1]) or np.any(last[idx] >= day):
            return None
        earlier.append(seen[idx])
        seen[idx] += 1
        last[idx] = day
    by_id = np.argsort(uid, kind="stable")
    first = np.empty(n, dtype=np.int64)
    first[by_id] = np.cumsum(seen[by_id]) - seen[by_id]
    idx = _cat(rows, 0)
    place = first[idx] + np.concatenate(earlier) if earlier else np.empty(0, dtype=np.int64)
    order = np.empty(len(place), dtype=np.int64)
    order[place] = np.arange(len(place))
    return order


def _transactions_table(rows: list[tuple], uid: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    idx, day, txn_type, amount, late = (_cat(rows, j) for j in range(5))
    return pd.DataFrame(
        {
            "txn_id": np.arange(1, len(idx) + 1, dtype=np.int64),
            "user_id": uid[idx],
            "txn_date": _day_to_date(start, day),
            "txn_type": np.array(TXN_TYPES)[txn_type],
            "amount": np.round(amount, 2),
            "days_late": _nullable(late, late >= 0, "Int16"),
        }
    )


def _loan_tables(book: LoanBook, uid: np.ndarray, start: np.datetime64) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The loans, their instalments as far as the data reaches, and each loan's true default probability (truth)."""
    loan_id = np.arange(1, len(book.user) + 1, dtype=np.int64)
    loans = pd.DataFrame({"loan_id": loan_id, "user_id": uid[book.user], "applied_date": _day_to_date(start, book.applied),
                          "amount": book.amount, "term_months": book.term.astype(np.int16),
                          "instalment": book.instalment})
    row, k = np.nonzero(book.recorded)
    paid = book.paid[row, k]
    known = book.settled[row, k]
    due = book.due[row, k]
    instalments = pd.DataFrame({
        "loan_id": loan_id[row], "instalment_no": (k + 1).astype(np.int16), "user_id": uid[book.user[row]],
        "due_date": _day_to_date(start, due), "amount_due": np.round(book.amount_due[row, k], 2),
        "amount_paid": np.round(book.amount_paid[row, k], 2),
        "paid_date": pd.Series(_day_to_date(start, np.where(known, paid, due))).where(known),
        "days_past_due": _nullable(np.maximum(paid - due, 0), known, "Int16"),
        "balance": np.round(book.balance[row, k], 2),
    })
    truth = pd.DataFrame({"loan_id": loan_id, "pd": book.pd, "shock_at_application": book.shock,
                          "default_day": book.default_day})
    return loans, instalments, truth


def _users_truth(uid: np.ndarray, latent: Latent, churn: Churn, abuse: Abuse) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": uid,
            "ring_id": latent.ring,
            "p_abuse": abuse.p_abuse,
            "is_abuser": abuse.is_abuser,
            "signup_day": latent.signup,
            "active_base": churn.base,
            "active_trend": churn.trend,
            "active_honey": churn.honey,
            "die_offset": churn.die_offset,
            "death_day": churn.death,
            "redeem_day": churn.redeem,
            "value": latent.value,
            "z_engagement": latent.z_e,
            "z_price": latent.z_p,
            "z_fatigue": latent.z_f,
        }
    )


# Share of users who opt out of each channel at some point (SMS and phone calls annoy most).
OPT_OUT_SHARE = {"sms": 0.04, "phone": 0.06, "push": 0.02, "wechat": 0.01}


def _opt_outs_table(uid: np.ndarray, day0: np.datetime64, days: int, first_user: int) -> pd.DataFrame:
    """Opt-outs drawn from their own random stream, so that adding them changed no other table (a chunk's
    past the first, `simulate_chunks`, its own)."""
    rng = np.random.default_rng([len(uid), days, 20261202, *([first_user] if first_user else [])])
    parts = []
    for channel, share in OPT_OUT_SHARE.items():
        who = np.flatnonzero(rng.random(len(uid)) < share)
        parts.append(pd.DataFrame({"user_id": uid[who], "channel": channel,
                                   "since": _day_to_date(day0, rng.integers(0, days, len(who)))}))
    return pd.concat(parts, ignore_index=True)


def assemble(start: date, users: pd.DataFrame, latent: Latent, churn: Churn, events: Events, abuse: Abuse,
             book: LoanBook, days: int, first_user: int = 0,
             ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The warehouse tables (the contract) and the ground-truth tables."""
    day0 = np.datetime64(start, "D")
    uid = users["user_id"].to_numpy()
    loans, instalments, loans_truth = _loan_tables(book, uid, day0)
    tables = {
        "users": _users_table(users, day0),
        "daily_activity": _activity_table(events.activity, uid, day0),
        "transactions": _transactions_table(events.transactions, uid, day0),
        "loans": loans,
        "instalments": instalments,
        "abuse_reports": pd.DataFrame({"user_id": uid[abuse.confirmed],
                                       "reported_date": _day_to_date(day0, abuse.report_day[abuse.confirmed])}),
        "opt_outs": _opt_outs_table(uid, day0, days, first_user),
    }
    truth = {"loans": loans_truth,
             "users": _users_truth(uid, latent, churn, abuse)}
    return tables, truth
