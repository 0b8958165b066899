"""Latency recording: HDR histograms in microseconds, and the percentiles we report."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["PERCENTILES", "new_histogram", "summarize"]

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
MAX_LATENCY_US = 60_000_000


def new_histogram(highest: int = MAX_LATENCY_US) -> HdrHistogram:
    """1 to ``highest`` (µs by default: 60 s) at 3 significant digits."""
    return HdrHistogram(1, highest, 3)


def summarize(histogram: HdrHistogram, unit: str = "us") -> dict[str, Any]:
    """Percentiles in ``unit``, the count, and the percentile spectrum for plots."""
    out: dict[str, Any] = {
        f"p{p:g}_{unit}": histogram.get_value_at_percentile(p) for p in PERCENTILES
    }
    out[f"max_{unit}"] = histogram.get_max_value()
    out["count"] = histogram.get_total_count()
    out["spectrum"] = [
        [p, histogram.get_value_at_percentile(p)]
        for p in (0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100)
    ]
    return out
