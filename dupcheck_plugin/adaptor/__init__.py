"""Adaptors (pure): the field mapping, request templates compiled once and rendered per lead, filters."""
