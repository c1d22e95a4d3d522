"""The fitted preprocessing that travels inside every logged model: feature order and categories."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scoring.vocabulary import NOT_FEATURES


def numbers(col: pd.Series) -> pd.Series:
    """A numeric feature as numbers, whatever it came as: a CSV's True/False or a number as text
    reads as the number it stands for; anything else is missing."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return pd.to_numeric(col, errors="coerce")
    text = col.astype("string").str.strip().str.lower()
    return pd.to_numeric(text.replace({"true": "1", "false": "0"}), errors="coerce")


@dataclass
class FeatureSpec:
    """Column order and category codes. An unseen category is treated as missing, as LightGBM
    treats a missing value: it follows the branch the model learned for missing. Columns that had
    missing values in training are optional: a frame may leave them out, as all missing."""

    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)
    optional: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.numeric + list(self.categorical)

    @property
    def categorical_index(self) -> list[int]:
        return [len(self.numeric) + i for i in range(len(self.categorical))]

    @classmethod
    def fit(cls, df: pd.DataFrame, exclude: set[str] | frozenset[str] = frozenset()) -> FeatureSpec:
        cols = [c for c in df.columns if c not in NOT_FEATURES and c not in exclude]
        numeric = [c for c in cols if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
        categorical = {
            c: sorted(str(v) for v in df[c].dropna().unique()) for c in cols if c not in numeric
        }
        optional = [c for c in cols if df[c].isna().any()]
        return cls(numeric=numeric, categorical=categorical, optional=optional)

    def to_matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Rows of df as the float64 matrix the model takes (missing and unseen → NaN). Whatever the
        columns' dtypes: ints, bools, nullable ints, numbers as text, categories as numbers."""
        missing = [c for c in self.names if c not in df.columns]
        required = [c for c in missing if c not in self.optional]
        if required:
            raise KeyError(f"missing feature columns: {required}")
        if missing:
            df = df.reindex(columns=self.names)
        out = np.empty((len(df), len(self.names)), dtype=np.float64)
        if self.numeric:
            out[:, : len(self.numeric)] = df[self.numeric].apply(numbers).to_numpy(dtype=np.float64, na_value=np.nan)
        for j, (col, cats) in enumerate(self.categorical.items()):
            codes = pd.Categorical(df[col].astype("string"), categories=cats).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, len(self.numeric) + j] = codes
        return out

    def unreadable(self, df: pd.DataFrame) -> tuple[str, int] | None:
        """The first numeric column and row whose value is there but reads as no number, if any."""
        for col in self.numeric:
            if col in df.columns and not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
                bad = numbers(df[col]).isna() & df[col].notna()
                if bad.any():
                    return col, int(np.flatnonzero(bad.to_numpy())[0])
        return None

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """df reduced to the model's columns, in their own dtypes: what a caller sends the logged model."""
        return df[[c for c in self.names if c in df.columns]].copy()

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical": self.categorical, "optional": self.optional}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(numeric=list(d["numeric"]), categorical={k: list(v) for k, v in d["categorical"].items()},
                   optional=list(d.get("optional", [])))
