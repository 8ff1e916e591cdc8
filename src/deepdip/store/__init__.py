"""The cutout store: the one data model every part of deepdip reads and writes (DESIGN.md)."""

from deepdip.store.folds import assign_folds
from deepdip.store.format import FORMAT_VERSION, REQUIRED_COLUMNS
from deepdip.store.reader import CutoutStore
from deepdip.store.validate import validate_store
from deepdip.store.writer import StoreWriter, add_columns, check_store_output, create_store

__all__ = ["CutoutStore", "StoreWriter", "create_store", "add_columns", "check_store_output", "assign_folds",
           "validate_store", "FORMAT_VERSION", "REQUIRED_COLUMNS"]
