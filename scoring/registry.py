"""The names training registers models under and the service serves them by."""

from __future__ import annotations

# Endpoint / CLI name → registered model name (MLflow registry and BentoML store alike).
MODEL_NAMES = {"churn": "churn", "abuse": "promo_abuse", "response": "marketing_response", "credit": "credit_features"}
CHAMPION = "champion"
CHALLENGER = "challenger"
# The serving snapshot (features, lookalike index, seeds) in the BentoML store.
SNAPSHOT_MODEL = "feature_snapshot"
# The daily disbursement forecast: a stored forecast, not a scorer (no snapshot, no features).
FORECAST_MODEL = "disbursement_forecast"
