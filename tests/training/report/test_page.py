"""The operating report's figures against hand-computed ones on the tiny warehouse, and its page in Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from scoring.segments import SegmentGrid
from tests.training.report.conftest import AS_OF
from training.report.page import build, render

CHROMIUM = Path("/usr/bin/chromium")


def test_activity_base_and_retention_figures_equal_the_hand_computed_ones(tiny):
    r = build(tiny, AS_OF)
    last = r.tables["activity"].iloc[-1]  # 2026-02-28
    # Launched in the 30 days to 02-28: users 1 (02-28), 2 (02-20), 4 (02-27); that day only user 1, twice.
    assert (last["dau"], last["mau"], last["launches"]) == (1, 3, 2)
    mau = r.tables["activity"].set_index("day")["mau"]
    # User 2's launch on 01-02 counts for 30 days, to 01-31 (with users 1 and 3), not on 02-01.
    assert (mau["2026-01-31"], mau["2026-02-01"], mau["2026-02-21"]) == (3, 2, 2)
    assert r.headline["young_share"] == pytest.approx(1 / 3)  # of 1, 2, 4 only user 1 is under 30
    assert r.headline["loan_penetration"] == pytest.approx(1 / 3)  # user 4's draw-down is older than 90 days
    assert r.headline["top20_value_share"] == pytest.approx(5000 / 6100)  # one user of five: user 4
    cohort = r.tables["retention"].set_index("cohort").loc["2026-01"]  # users 1, 2, 3
    assert (cohort["users"], cohort["day_1"]) == (3, 1.0)  # each launched the day after signing up
    assert cohort["day_7"] == pytest.approx(1 / 3) and cohort["day_30"] == pytest.approx(1 / 3)


def test_the_grid_matches_the_served_segments(tiny):
    grid = build(tiny, AS_OF).tables["grid"]
    cells = {(s, b): n for (s, b), n in grid.stack().items() if n}
    assert cells == {("active", "V3"): 1, ("silent_7_21", "V2"): 1, ("silent_22_90", "V1"): 1, ("active", "V5"): 1,
                     ("silent_360_plus", "V1"): 1}
    # The same users through scoring/segments.py: tenure, days silent, fund value.
    seg = SegmentGrid([0.0, *np.quantile([100.0, 1000.0, 5000.0], [0.25, 0.5, 0.75])])
    labels = seg.assign(np.array([59, 59, 45, 273, 424.0]), np.array([1, 9, 44, 2, 365.0]),
                        np.array([1000, 100, 0, 5000, 0.0]))
    assert sorted(labels) == sorted(f"{s}/{b}" for s, b in cells)


def test_campaign_figures(tiny):
    c = build(tiny, AS_OF).tables["campaigns"].iloc[0]
    assert (c["reach"], c["conversion"], c["control_conversion"], c["incremental"]) == (2, 0.5, 0.0, 0.5)
    assert c["cost"] == pytest.approx(2 * 0.05 + 5.0)  # two SMS, one coupon redeemed
    assert c["roi"] == pytest.approx((1 * tiny.report_conversion_value - 5.1) / 5.1)
    assert c["incremental_low"] < 0.5 < c["incremental_high"]


def test_the_page_opens_in_chromium_with_every_plot(tiny, tmp_path):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make install` installs Debian's chromium package"
    r = build(tiny, AS_OF)
    page_path = tmp_path / "report.html"
    page_path.write_text(render(r))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            for name in r.plots:
                loaded = page.locator(f"#plot-{name}").evaluate("img => img.complete && img.naturalWidth > 100")
                assert loaded, f"plot {name} did not render"
            page.screenshot(path=tmp_path / "report.png", full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
