"""pyiot's local stack: a mosquitto broker pyiot owns and an AWS-IoT-compatible shadow service.

Use :class:`LocalStack` to run both; the parts are usable on their own.
"""

from pyiot.local.auth import InsecureListen, TlsFiles
from pyiot.local.discovery import StackError, choose_broker, find_stack
from pyiot.local.mosquitto import Mosquitto, MosquittoNotFound, PortInUse
from pyiot.local.shadow_service import ShadowService
from pyiot.local.stack import LocalStack
from pyiot.local.store import ShadowStore, StoreError

__all__ = [
    "InsecureListen",
    "TlsFiles",
    "LocalStack",
    "Mosquitto",
    "MosquittoNotFound",
    "PortInUse",
    "ShadowService",
    "ShadowStore",
    "StackError",
    "StoreError",
    "choose_broker",
    "find_stack",
]
