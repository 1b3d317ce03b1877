"""The ROS layer of dsr_ros: the node and what exists only for it.

``node`` (the Node: set-up, worker thread, shutdown, ``main``), ``frame_inputs`` (callbacks:
decode, pairing with camera_info, the one-frame slot), ``frame_outputs`` (publishing the image,
camera_info and points), ``node_parameters`` (the parameter table and its one check),
``model_loading``, ``qos_follow``, ``diagnostics``, ``messages`` (ROS messages <-> numpy),
``pipeline`` (frame slot, stamp pairing, flow statistics), ``ros_args`` (node command lines)
and ``demo`` (a procedural camera publishing to the node over DDS: ``make demo``). Everything
here may import rclpy and the message packages; the frame pipeline one level up never imports
this package.
"""
