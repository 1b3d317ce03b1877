"""dsr_ros: single-depth super-resolution for ROS 2 depth cameras.

Two layers, two folders. The frame pipeline, usable without ROS, is this package:
``inference`` (the resolver), ``frame_encoding``, ``sampling_geometry``, ``camera_info``,
``depth_io``, ``depth_scaling``, ``networks``, ... The ROS plumbing is :mod:`dsr_ros.ros`: the
node, its parameters, inputs and outputs, QoS following and diagnostics; only it imports rclpy
(and ``demo``, which runs a camera node of its own).
"""

__version__ = '0.1.0'
