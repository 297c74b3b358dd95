"""The data layer: CIFAR-10 from its sources into cached uint8 tensors (`sources`), and batches
normalised and augmented on the device (`batches`)."""

from .batches import DeviceBatches, cutout, random_crop
from .sources import CLASSES, HOW_TO_PROVIDE, Cifar10, load_cifar10

__all__ = ["CLASSES", "HOW_TO_PROVIDE", "Cifar10", "DeviceBatches", "cutout", "load_cifar10", "random_crop"]
