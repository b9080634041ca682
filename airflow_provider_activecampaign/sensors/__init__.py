"""Sensors: waiting belongs here, not in operators."""
