"""The topics of events stored before the domain moved under ``bulkorder`` (0.1.0).

eventsourcing stores each event with its class's topic (``module:qualname``), and an
``Order.Created`` event and every snapshot carry the aggregate's topic in their state.
0.1.0 installed this layer as the top-level package ``domain``, so what it stored names
the module by that path (:data:`OLD_ORDER_MODULE`); today it is :mod:`bulkorder.domain.order`. Nothing in the store
is rewritten: the orders application's mapper (:class:`RenamedTopicsMapper`) translates
the old topics as it reads.

Deliberately not registered in eventsourcing's process-wide topic cache
(``register_topic``): a service beside bulkorder may well have its own ``order`` module
in its own ``domain`` package, with an ``Order`` aggregate, the very name clash the move avoids, and a global
registration would hand that service's events our classes (or refuse its own).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from bulkorder.domain.order import Order

#: Where the ``Order`` classes lived in 0.1.0 (a module path that must stay as stored).
OLD_ORDER_MODULE = "domain.order"  # rewrite-imports: keep

#: Every class 0.1.0 stored a topic for: the aggregate (in ``Created`` and snapshots) and
#: each of its events. A class added later never had an old topic.
_STORED_IN_0_1_0 = (
    Order,
    Order.Created,
    Order.ItemsAdded,
    Order.BatchRejected,
    Order.Submitted,
    Order.FulfillmentCompleted,
    Order.FulfillmentFailed,
    Order.FulfillmentRetried,
    Order.Cancelled,
)

#: Old topic -> the class it names today.
RENAMED_TOPICS: dict[str, type] = {f"{OLD_ORDER_MODULE}:{cls.__qualname__}": cls for cls in _STORED_IN_0_1_0}

#: Fields of an event's state that hold a class topic: ``Created.originator_topic`` names
#: the aggregate class, a ``Snapshot``'s ``topic`` the class of the state it holds.
_TOPIC_FIELDS = ("originator_topic", "topic")


def current_topic(topic: str) -> str:
    """Today's topic for ``topic`` (itself unless it is one 0.1.0 stored)."""
    cls = RENAMED_TOPICS.get(topic)
    return topic if cls is None else get_topic(cls)


def stored_topics(*classes: type) -> tuple[str, ...]:
    """Every topic events of ``classes`` may be stored under: today's and 0.1.0's.

    For queries that select events by topic in the store (the relay's), which compare
    the stored strings and so must name the old ones too."""
    old = {cls: topic for topic, cls in RENAMED_TOPICS.items()}
    topics: list[str] = []
    for cls in classes:
        topics.append(get_topic(cls))
        if cls in old:
            topics.append(old[cls])
    return tuple(topics)


class RenamedTopicsMixin:
    """For a :class:`~eventsourcing.persistence.Mapper`: reads events stored under 0.1.0's
    topics as today's classes."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        topic = current_topic(stored_event.topic)
        if topic != stored_event.topic:
            stored_event = replace(stored_event, topic=topic)  # keeps a Notification's id
        event = super().to_domain_event(stored_event)  # type: ignore[misc]
        state = event.__dict__
        for name in _TOPIC_FIELDS:
            value = state.get(name)
            if isinstance(value, str) and value in RENAMED_TOPICS:
                state[name] = current_topic(value)
        return event


class RenamedTopicsMapper(RenamedTopicsMixin, Mapper[UUID]):
    """eventsourcing's mapper, reading 0.1.0's topics too."""


def renamed_topics_mapper_class(mapper_class: type[Mapper[UUID]] | None) -> type[Mapper[UUID]]:
    """``mapper_class`` (a configured ``MAPPER_TOPIC``) reading 0.1.0's topics too."""
    if mapper_class is None or mapper_class is Mapper:
        return RenamedTopicsMapper
    if issubclass(mapper_class, RenamedTopicsMixin):
        return mapper_class
    return type(f"RenamedTopics{mapper_class.__name__}", (RenamedTopicsMixin, mapper_class), {})
