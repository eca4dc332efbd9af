"""Notifications as data: the tables of notifications, their audiences, inboxes, devices, followed units and
the push outbox. Core migrates, prunes and reads them (the feed reads followed units, the shell and the
resident's pages read inboxes and follows); push delivers them."""
