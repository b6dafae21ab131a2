"""Helper scripts behind the Makefile (not part of the built collection)."""
