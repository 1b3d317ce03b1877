"""dsr_ros: single-depth super-resolution for ROS 2 depth cameras.

Two layers. The ROS plumbing: ``node`` (the Node: callbacks, worker thread, publishing),
``node_parameters`` (the parameter table and its one validation), ``model_loading``,
``qos_follow`` and ``diagnostics``; only ``node`` and ``qos_follow`` import rclpy (``demo``
runs a node of its own). The frame pipeline, usable without ROS: ``inference`` (the resolver),
``sampling_geometry``, ``camera_info``, ``depth_io``, ``depth_scaling``, ``networks``, ...
"""

__version__ = '0.1.0'
