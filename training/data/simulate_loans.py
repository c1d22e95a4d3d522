"""The loan book: every borrower's instalment loans, their repayment month by month, and each one's true PD.

Simulated per loan after the day loop (which it does not touch), vectorised over loans and stepped
over the months of a loan's life. Borrowers are the users with a credit line; they apply at a
rate set by their need for credit, three times as often while in financial distress. A loan is
repaid in monthly instalments through a delinquency Markov chain on the months the oldest unpaid
instalment is behind (0 current, 1, 2, then 90+ days past due: default, charged off):

- current: the instalment due is paid, on time or some days late, sometimes only in part (the
  shortfall rolls onto the next instalment), or missed;
- behind: all arrears are paid at once (cure), or the borrower misses again.

The chain is driven by the borrower's latent risk, the loan's own hidden risk and distress
shocks (a monthly two-state process per user). Repayment discipline (lateness, partial payments)
shows `z_r_obs`; `z_r_hidden` and each loan's own risk move only misses and cures; the shock state
at the application is known to the truth alone (recent delinquency on other loans hints at it).
The book starts `BOOK_DAYS` before the simulated window, as the users' signups do, so that 12-month
outcomes are observed by the end of the data and repayment history exists at every snapshot.

A helper of `training.data.simulate`, the public module: that module imports this one, never the reverse.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from training.data.schema import DEFAULT_DPD, DEFAULT_WITHIN_DAYS
from training.data.simulate_tables import LoanBook, Population

BOOK_DAYS = 1080
MONTH = 30  # instalments fall due every 30 days from the application
TERMS, TERM_SHARES = np.array([3, 6, 12]), np.array([0.3, 0.4, 0.3])
MAX_TERM = int(TERMS.max())
MONTHLY_FEE = 0.015  # flat, on the principal
DEFAULTED = DEFAULT_DPD // MONTH  # months behind: the oldest unpaid instalment is then 90 days past due
# Default within 12 months of the application: 90 days past due on an instalment due within 275 days
# (the first 9), i.e. by the end of loan month 10, as instalment k falls due at month k and defaults at
# the end of month k + 2.
OUTCOME_MONTHS = (DEFAULT_WITHIN_DAYS - DEFAULT_DPD) // MONTH + DEFAULTED - 1
# A loan past its term is settled or defaulted within DEFAULTED months more.
STEPS = MAX_TERM + DEFAULTED
NEVER = 10**6

# Distress: entered with 2% a month, left with 25% (about 7% of borrowers at any time).
SHOCK_IN, SHOCK_OUT = 0.02, 0.25
SHOCK_RISK = 0.4  # on the log-odds of missing, and against curing
SHOCK_APPLY = 1.0  # the distressed apply (1 + this) times as often
APPLY_LOGIT = -1.1  # log of the monthly application rate at average need
MISS_LOGIT, CURE_LOGIT = -2.8, 1.2
LATE_LOGIT, PARTIAL_LOGIT = -1.8, -2.8


def _shocks(rng: np.random.Generator, n: int, months: int) -> np.ndarray:
    """Each user's distress per 30-day calendar month since the book started (int8 0/1)."""
    s = np.empty((n, months), np.int8)
    s[:, 0] = rng.random(n) < SHOCK_IN / (SHOCK_IN + SHOCK_OUT)
    for c in range(1, months):
        r = rng.random(n)
        s[:, c] = np.where(s[:, c - 1] == 1, r >= SHOCK_OUT, r < SHOCK_IN)
    return s


def _applications(rng: np.random.Generator, pop: Population, borrowers: np.ndarray, need: np.ndarray,
                  shock: np.ndarray, start: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """User index and day of every application: a Poisson count per borrower and calendar month while signed up."""
    months = (days - start + MONTH - 1) // MONTH
    month_start = start + MONTH * np.arange(months)
    first = np.maximum(pop.lat.signup[borrowers], start)[:, None]
    last = np.minimum(pop.churn.death[borrowers], days)[:, None]
    rate = (np.exp(APPLY_LOGIT + 0.5 * need).astype(np.float32)[:, None] * (1 + SHOCK_APPLY * shock[:, :months])
            * ((month_start + MONTH > first) & (month_start < last)))
    counts = rng.poisson(rate).astype(np.int32)
    b, month = np.nonzero(counts)
    b, month = np.repeat(b, counts[b, month]), np.repeat(month, counts[b, month])
    day = month_start[month] + rng.integers(0, MONTH, len(b))
    keep = (day >= first[b, 0]) & (day < last[b, 0])
    order = np.lexsort((b[keep], day[keep]))
    return b[keep][order], day[keep][order]


def _risk(rng: np.random.Generator, pop: Population, need: np.ndarray, user: np.ndarray) -> np.ndarray:
    """Log-odds offset of each loan's misses: the borrower's risk, need (per loan) and the loan's own hidden part."""
    lat = pop.lat
    u = (0.9 * lat.z_r_obs + 0.2 * lat.z_r_hidden + 0.2 * (3 - pop.income) + 0.3 * pop.young
         - 0.3 * pop.bound_card)
    return u[user] + 0.3 * need + 0.1 * rng.normal(0, 1, len(user))


def _chain(miss: np.ndarray, cure: np.ndarray, in_term: bool | np.ndarray) -> np.ndarray:
    """Probabilities of the next month's state (0, 1, 2, defaulted) from each state, per loan: n × 4 × 4."""
    n = len(miss)
    t = np.zeros((n, 4, 4))
    t[:, 0, 0], t[:, 0, 1] = np.where(in_term, 1 - miss, 1.0), np.where(in_term, miss, 0.0)
    for s in (1, 2):
        t[:, s, 0], t[:, s, s + 1] = cure[:, s - 1], 1 - cure[:, s - 1]
    t[:, 3, 3] = 1.0
    return t


def _miss_cure(x: np.ndarray, shock: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chance of missing from current, and of curing from one and two months behind (n × 2)."""
    risk = x + SHOCK_RISK * shock
    cure = expit(CURE_LOGIT - 0.35 * risk[:, None] - 0.5 * np.arange(2)[None, :])
    return expit(MISS_LOGIT + risk), cure


def true_pd(x: np.ndarray, shock0: np.ndarray, term: np.ndarray) -> np.ndarray:
    """P(90+ days past due within 12 months) given the loan's risk and the distress at application,
    integrating the future distress and repayment months exactly (a chain over state × distress)."""
    n = len(x)
    p = np.zeros((n, 4, 2))
    p[np.arange(n), 0, shock0] = 1.0
    stay = np.array([[1 - SHOCK_IN, SHOCK_IN], [SHOCK_OUT, 1 - SHOCK_OUT]])
    for m in range(OUTCOME_MONTHS):
        p = p @ stay  # this month's distress
        nxt = np.zeros_like(p)
        for k in (0, 1):
            miss, cure = _miss_cure(x, np.full(n, k))
            nxt[:, :, k] = np.einsum("ns,nst->nt", p[:, :, k], _chain(miss, cure, m < term))
        p = nxt
    return p[:, DEFAULTED, :].sum(axis=1)


def _repay(rng: np.random.Generator, x: np.ndarray, z_obs: np.ndarray, shock: np.ndarray, applied: np.ndarray,
           term: np.ndarray, instalment: np.ndarray) -> tuple[np.ndarray, ...]:
    """The chain run month by month for every loan at once: amounts due and paid, days paid, default day."""
    n = len(x)
    k_idx = np.arange(MAX_TERM)
    in_schedule = k_idx[None, :] < term[:, None]
    due = applied[:, None] + MONTH * (1 + k_idx[None, :])
    amount_due = np.where(in_schedule, instalment[:, None], 0.0)
    amount_paid = np.zeros((n, MAX_TERM))
    paid = np.full((n, MAX_TERM), NEVER)
    default_day = np.full(n, NEVER)
    state = np.zeros(n, np.int8)
    rows = np.arange(n)
    for m in range(STEPS):
        k = shock[:, m]
        day = applied + MONTH * (m + 1)  # the month opens with instalment m falling due
        miss_p, cure_p = _miss_cure(x, k)
        u = rng.random(n)
        current = (state == 0) & (m < term)
        behind = (state > 0) & (state < DEFAULTED)
        pays = current & (u >= miss_p)
        cure = behind & (u < cure_p[rows, np.clip(state - 1, 0, 1)])
        discipline = z_obs + SHOCK_RISK * k
        late = rng.random(n) < expit(LATE_LOGIT + 2.5 * discipline)
        partial = pays & (m < term - 1) & (rng.random(n) < expit(PARTIAL_LOGIT + 1.5 * discipline))
        if m < MAX_TERM:
            on = np.flatnonzero(pays)
            # The less disciplined pay later in the month, too.
            days_late = 1 + rng.binomial(MONTH - 2, expit(discipline[on] - 1.0))
            paid[on, m] = day[on] + np.where(late[on], days_late, 0)
            share = np.where(partial[on], rng.uniform(0.3, 0.9, len(on)), 1.0)
            amount_paid[on, m] = np.round(amount_due[on, m] * share, 2)
            short = np.flatnonzero(partial)  # never on a last instalment, so m + 1 is in the schedule
            amount_due[short, min(m + 1, MAX_TERM - 1)] += np.round(amount_due[short, m] - amount_paid[short, m], 2)
        arrears = cure[:, None] & (paid == NEVER) & in_schedule & (k_idx[None, :] <= m)
        r, c = np.nonzero(arrears)
        when = day + rng.integers(0, MONTH, n)
        paid[r, c], amount_paid[r, c] = when[r], amount_due[r, c]
        state = np.where(cure, 0, np.where(current & ~pays, 1, np.where(behind, state + 1, state))).astype(np.int8)
        gone = behind & ~cure & (state == DEFAULTED)
        default_day[gone] = day[gone] + MONTH
    return due, amount_due, amount_paid, paid, default_day


def simulate_loans(rng: np.random.Generator, pop: Population, days: int) -> LoanBook:
    """Every loan applied for from BOOK_DAYS before the window to its end, repaid as far as the data reaches
    (`rng`: a generator of its own, apart from the day loop's)."""
    start, borrowers = -BOOK_DAYS, np.flatnonzero(pop.credit_line > 0)
    need = rng.normal(0, 1, len(borrowers))
    shocks = _shocks(rng, len(borrowers), (days - start) // MONTH + STEPS + 2)
    b, applied = _applications(rng, pop, borrowers, need, shocks, start, days)
    user = borrowers[b]
    x = _risk(rng, pop, need[b], user)
    term = rng.choice(TERMS, len(user), p=TERM_SHARES)
    amount = np.round(pop.credit_line[user] * rng.uniform(0.1, 0.5, len(user)), 2)
    instalment = np.round(amount * (1 + MONTHLY_FEE * term) / term, 2)
    month0 = (applied - start) // MONTH
    path = shocks[b[:, None], month0[:, None] + 1 + np.arange(STEPS)[None, :]]
    due, amount_due, amount_paid, paid, default_day = _repay(rng, x, pop.lat.z_r_obs[user], path, applied, term,
                                                             instalment)
    shock0 = shocks[b, month0].astype(int)
    keep = _before_default(user, applied, default_day)
    # What the data holds at its end: instalments due before it (and before a charge-off), payments made before it.
    recorded = (np.arange(MAX_TERM) < term[:, None]) & (due < default_day[:, None]) & (due < days)
    amount_paid = np.where(paid < days, amount_paid, 0.0)
    # Owed when an instalment falls due: the repayable total less what was paid before that day.
    balance = np.column_stack([instalment * term - (amount_paid * (paid < due[:, [k]])).sum(axis=1)
                               for k in range(MAX_TERM)])
    cols = (user, applied, amount, term, instalment, due, amount_due, amount_paid, paid, paid < days, balance, recorded,
            default_day, true_pd(x, shock0, term), shock0)
    return LoanBook(*(c[keep] for c in cols))


def _before_default(user: np.ndarray, applied: np.ndarray, default_day: np.ndarray) -> np.ndarray:
    """A borrower who defaulted gets no further loans: the applications before the first default."""
    first = np.full(user.max() + 1 if len(user) else 0, NEVER)
    np.minimum.at(first, user, default_day)
    return applied < first[user]
