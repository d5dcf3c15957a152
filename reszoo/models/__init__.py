"""Importing this package registers every model family with the registry."""
from reszoo.models import cifar  # noqa: F401
from reszoo.models import resnet  # noqa: F401
from reszoo.models import resnet_v2  # noqa: F401
from reszoo.models import densenet  # noqa: F401
