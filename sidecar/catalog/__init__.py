"""Catalogs as data: plans, features, credit types and prices, loaded from YAML."""

from sidecar.catalog.load import load_catalog, parse_catalog
from sidecar.catalog.model import Catalog, Feature, Plan

__all__ = ["Catalog", "Feature", "Plan", "load_catalog", "parse_catalog"]
