"""A module imported only after a post-import hook is registered for it."""

VALUE = 1
