"""Bounded work per request: pixel bombs, zip bombs, body limits, JSON depth (issue 15)."""
