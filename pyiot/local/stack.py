"""The local stack: a mosquitto broker pyiot owns plus pyiot's local Device Shadow service.

``pyiot run`` with no AWS settings starts this; things and apps then talk to
``mqtt://127.0.0.1:PORT`` exactly as they would to AWS IoT Core.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from pyiot.local.mosquitto import Mosquitto, free_port
from pyiot.local.service import Service
from pyiot.local.shadow_service import ShadowService
from pyiot.local.store import ShadowStore

_LOGGER = logging.getLogger(__name__)

#: Environment variable that overrides where local shadows (and broker logs) are kept.
DATA_DIR_ENV = "PYIOT_DATA_DIR"
STORE_FILE = "shadows.sqlite3"
HOST = "127.0.0.1"


def default_data_dir() -> Path:
    """``$PYIOT_DATA_DIR`` if set, else the platform's user data directory for pyiot."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("pyiot"))


class LocalStack(Service):
    """mosquitto + :class:`ShadowService` + :class:`ShadowStore`, started and stopped together.

    ``port`` is the preferred broker port (another free port is used if it is taken);
    ``None`` means any free port.
    """

    def __init__(self, port: int | None = 1883, data_dir: Path | None = None) -> None:
        self.requested_port = port
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.host = HOST
        self.mosquitto: Mosquitto | None = None
        self.store: ShadowStore | None = None
        self.shadow_service: ShadowService | None = None

    @property
    def port(self) -> int:
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        return self.mosquitto.port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def store_path(self) -> Path:
        return self.data_dir / STORE_FILE

    def start(self) -> None:
        """Start the broker, then the shadow service; on failure leave nothing running."""
        if self.mosquitto is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.requested_port)
        mosquitto = Mosquitto(port, host=self.host, workdir=self.data_dir / "mosquitto")
        mosquitto.start()
        self.mosquitto = mosquitto
        try:
            self.store = ShadowStore(self.store_path)
            self.shadow_service = ShadowService(self.host, port, self.store)
            self.shadow_service.start()
        except BaseException:
            self.stop()
            raise
        _LOGGER.info("local stack on %s, shadows in %s", self.url, self.store_path)

    def stop(self) -> None:
        """Stop the shadow service, close the store, stop the broker."""
        service, self.shadow_service = self.shadow_service, None
        store, self.store = self.store, None
        mosquitto, self.mosquitto = self.mosquitto, None
        if service is not None:
            service.stop()
        if store is not None:
            store.close()
        if mosquitto is not None:
            mosquitto.stop()

    def __repr__(self) -> str:
        where = self.url if self.mosquitto is not None else "stopped"
        return f"<LocalStack {where} data_dir={self.data_dir}>"
