"""The families: importing this package registers every network (explicit imports, no star imports)."""
from . import resnet

__all__ = ["resnet"]
