"""dsr_ros: single-depth super-resolution for ROS 2 depth cameras.

Only ``dsr_ros.node`` imports rclpy; everything else is usable without ROS.
"""

__version__ = '0.1.0'
