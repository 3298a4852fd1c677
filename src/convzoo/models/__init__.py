"""The families: importing this package registers every network (explicit imports, no star imports)."""
from . import (
    alexnet,
    googlenet,
    inception_bn,
    inception_resnet,
    inception_v3,
    inception_v4,
    lenet,
    mobilenet_v1,
    mobilenet_v2,
    nin,
    resnet,
    shufflenet_v1,
    squeezenet,
    vgg,
    xception,
)

__all__ = [
    "alexnet", "googlenet", "inception_bn", "inception_resnet", "inception_v3", "inception_v4", "lenet",
    "mobilenet_v1", "mobilenet_v2", "nin", "resnet", "shufflenet_v1", "squeezenet", "vgg", "xception",
]
