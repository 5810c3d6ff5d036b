"""Importable helpers for workflow classes used by the tests."""
