"""The node's input subscriptions and their QoS: ``input_reliability`` auto and QoS warnings.

A depth driver may publish reliable or best effort, and the choice matters: a best-effort
subscription drops fragments of large frames under load, and a reliable one receives nothing
from a best-effort publisher. With ``input_reliability: auto`` each input follows its
publishers, as rosbag2 and RViz do, and is re-created when they change. Kept apart from the
node because it is graph plumbing with state of its own (which inputs were re-created, which
a user pinned with a qos_overrides parameter).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Set, Tuple

from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

__all__ = ['RELIABILITY_CHECK_S', 'FollowedInputs', 'incompatible_qos_callbacks',
           'log_incompatible']

#: Seconds between two looks at the graph for input_reliability auto.
RELIABILITY_CHECK_S = 1.0

#: (topic, message type, callback, history depth) of one input subscription.
Input = Tuple[str, type, Callable[[Any], None], int]


def _matching_reliability(publishers: List[Any]) -> str:
    """``reliable`` when there are publishers and all offer reliable delivery, else
    ``best_effort`` (which also receives from reliable publishers)."""
    if publishers and all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                          for info in publishers):
        return 'reliable'
    return 'best_effort'


def log_incompatible(logger: Any, side: str, event: Any, input_reliability: str) -> None:
    """Warn about an incompatible QoS event on a ``side`` ('subscription' or 'publisher'),
    with a hint when it is the usual reliability mismatch; silent when auto will fix it."""
    try:
        policy = QoSPolicyKind(event.last_policy_kind).name
    except ValueError:
        policy = str(event.last_policy_kind)
    if side == 'subscription' and policy == 'RELIABILITY' and input_reliability == 'auto':
        return  # a best-effort publisher appeared: the next graph check switches (logged)
    hint = (' (input_reliability is reliable but the publisher is best effort?)'
            if side == 'subscription' and policy == 'RELIABILITY' else '')
    logger.warning(f'incompatible QoS on a {side}: policy {policy}, '
                   f'{event.total_count} time(s){hint}')


def incompatible_qos_callbacks(
        node: Node, input_reliability: str
) -> Tuple[SubscriptionEventCallbacks, PublisherEventCallbacks]:
    """Event callbacks that log incompatible QoS for the node's subscriptions and publishers
    (otherwise a mismatch is silent: no frames, and no word why)."""
    def on_subscription(event: Any) -> None:
        log_incompatible(node.get_logger(), 'subscription', event, input_reliability)

    def on_publisher(event: Any) -> None:
        log_incompatible(node.get_logger(), 'publisher', event, input_reliability)

    return (SubscriptionEventCallbacks(incompatible_qos=on_subscription),
            PublisherEventCallbacks(incompatible_qos=on_publisher))


class FollowedInputs:
    """The node's input subscriptions, each with the reliability ``input_reliability`` asks.

    With ``auto`` each input is reliable when every publisher found in the graph is reliable
    (a best-effort subscription drops fragments of large frames under load, and lost frames
    never reach the node, so they cannot even be counted), best effort otherwise or when there
    is none; :meth:`follow` re-checks the graph every RELIABILITY_CHECK_S.

    Standard QoS overrides are read when a subscription is first created; a user override of
    an input's reliability pins it (auto leaves that input alone). Re-created subscriptions
    take no overrides: rclpy would re-apply the first creation's value.
    """

    def __init__(self, node: Node, inputs: Sequence[Input], input_reliability: str,
                 events: SubscriptionEventCallbacks, overrides: QoSOverridingOptions) -> None:
        self._node = node
        self._wanted = input_reliability
        self._events = events
        self._overrides = overrides
        self._specs = tuple(inputs)
        self.subscriptions: Dict[str, Any] = {}
        self._reliability: Dict[str, str] = {}
        self._pinned: Set[str] = set()
        self.update()

    def topic_name(self, topic: str) -> str:
        """The resolved name ``topic`` is subscribed under."""
        return self.subscriptions[topic].topic_name

    def follow(self) -> None:
        """With ``auto``, re-check the publishers every RELIABILITY_CHECK_S from now on."""
        if self._wanted == 'auto':
            self._node.create_timer(RELIABILITY_CHECK_S, self.update)

    def update(self) -> None:
        """(Re-)create the input subscriptions whose reliability should change."""
        node, wanted = self._node, self._wanted
        for topic, msg_type, callback, depth in self._specs:
            current = self.subscriptions.get(topic)
            if topic in self._pinned:
                continue
            reliability = wanted
            if wanted == 'auto':
                name = current.topic_name if current is not None else node.resolve_topic_name(
                    topic)
                reliability = _matching_reliability(node.get_publishers_info_by_topic(name))
            if current is not None and reliability == self._reliability[topic]:
                continue
            if current is not None:
                node.destroy_subscription(current)
            qos = QoSProfile(depth=depth, reliability=(
                ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                else qos_profile_sensor_data.reliability))
            requested = qos.reliability
            self.subscriptions[topic] = node.create_subscription(
                msg_type, topic, callback, qos, event_callbacks=self._events,
                **({'qos_overriding_options': self._overrides} if current is None else {}))
            self._reliability[topic] = reliability
            if wanted == 'auto' and current is None and qos.reliability != requested:
                # rclpy wrote a user's qos_overrides value into ``qos``: it wins over auto.
                self._pinned.add(topic)
                node.get_logger().info(
                    f'input_reliability auto: {self.topic_name(topic)} pinned to '
                    f'{qos.reliability.name.lower()} by its qos_overrides parameter')
                continue
            if wanted == 'auto':
                node.get_logger().info(
                    f'input_reliability auto: subscribing to {self.topic_name(topic)} '
                    f'{reliability.replace("_", "-")} '
                    f'({"matching its publishers" if current is None else "publishers changed"})')
