"""Loopback fakes of the outside services the host talks to, for the host's and mini-apps' tests."""
