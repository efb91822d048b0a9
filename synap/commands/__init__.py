"""The command layer: the single write path shared by every front end."""
