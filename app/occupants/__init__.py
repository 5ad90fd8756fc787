"""The occupant listing: the FM team's record of owners, tenants, allottees and their families."""
