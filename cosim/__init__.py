"""cosim: a vehicular-network co-simulator coupling SUMO mobility, a SimPy radio model and
federated fine-tuning of a multi-modal multi-task foundation model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cosim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
