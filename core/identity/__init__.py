"""Identity and access: who is calling, which roles they hold in which units, what they may do."""
