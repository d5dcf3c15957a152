"""Importing this package registers every model family with the registry."""
from reszoo.models import cifar  # noqa: F401
