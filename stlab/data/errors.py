"""Errors raised by the data layer. Each message names the problem and the fix."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data-layer error."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set's file is in none of the places looked and could not be downloaded."""


class ChecksumError(DataError):
    """A file's content differs from the registered checksum."""


class DataValidationError(DataError, ValueError):
    """A table does not follow its documented schema (columns, types, ranges, timestamps)."""
