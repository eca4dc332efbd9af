"""Org units: the city, its departments, and the 40 communes and wards (since 1 July 2025)."""
