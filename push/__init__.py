"""Delivery: the fan-out broker (and, as they land, the notifier, inbox, devices, FCM and WebSockets)."""
