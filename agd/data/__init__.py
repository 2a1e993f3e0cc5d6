"""Datasets (one module each) and the device-resident loader."""

from agd.data.base import ArrayData
from agd.data.loader import DeviceLoader, make_loaders

__all__ = ["ArrayData", "DeviceLoader", "make_loaders"]
