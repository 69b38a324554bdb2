"""The brokers scv starts itself: tansu (embedded, memory only, the zero-dependency default of
``make run`` and ``make test``) and Apache Kafka (real KRaft nodes with data on disk, the
broker scv is proven on: ``make test-kafka``).

:func:`local_broker` starts the one ``SCV_BROKER`` names; both have ``bootstrap``,
``start()``, ``stop()``, ``running``, ``log_path``, ``kind``, ``version`` and ``pids`` (the
processes to read CPU time from: tansu's, or one JVM per Kafka node).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from scv.brokers.apache import ApacheKafka
from scv.brokers.fetch import KAFKA_VERSION, KafkaSetupError
from scv.brokers.process import free_port
from scv.brokers.tansu import EmbeddedBroker

if TYPE_CHECKING:
    from scv.settings import Settings

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafka",
    "Broker",
    "EmbeddedBroker",
    "KafkaSetupError",
    "free_port",
    "local_broker",
]


class Broker(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def bootstrap(self) -> str: ...
    @property
    def running(self) -> bool: ...
    @property
    def pids(self) -> list[int]: ...
    @property
    def version(self) -> str | None: ...
    @property
    def log_path(self) -> Path | None: ...
    def start(self, timeout: float = ...) -> Any: ...
    def stop(self, timeout: float = ...) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def local_broker(settings: Settings, work: Path, *, nodes: int = 1, **kafka: Any) -> Broker:
    """The broker ``SCV_BROKER`` names (``tansu`` or ``kafka``), not started yet, with its
    log (and Kafka's data) under ``work``; ``kafka`` goes to :class:`ApacheKafka`."""
    if settings.broker == "tansu":
        if nodes != 1:
            raise ValueError("tansu runs as one node; a cluster needs SCV_BROKER=kafka")
        return EmbeddedBroker(log_path=work / "broker.log")
    return ApacheKafka(
        nodes,
        work_dir=work / "kafka",
        version=settings.kafka_version,
        home=settings.kafka_home,
        **kafka,
    )
