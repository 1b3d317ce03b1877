"""Launch dsr_node: depth super-resolution for a ROS 2 depth camera.

Example (RealSense driver in its default namespace)::

    ros2 launch dsr_ros dsr.launch.py namespace:=camera \\
        depth_topic:=/camera/camera/depth/image_rect_raw \\
        camera_info_topic:=/camera/camera/depth/camera_info weights_path:=/models/dsrnet_x4.pt

Parameters come from ``params_file``; ``weights_path`` and ``device`` override it only when given
(an empty value keeps the file's setting). Topic arguments become remappings of the node's
relative topics, so the defaults leave them unchanged.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

#: Node topic -> launch argument that remaps it.
REMAPPED_TOPICS = {'depth/image_raw': 'depth_topic',
                   'depth/camera_info': 'camera_info_topic',
                   'depth_sr/image_raw': 'output_topic'}
#: Parameters a launch argument may override (only when not empty).
OVERRIDABLE = ('weights_path', 'device')


def _launch_node(context):
    """Build the Node once the arguments are known, leaving out empty overrides."""
    def value(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: value(name) for name in OVERRIDABLE if value(name)}
    parameters = [value('params_file')] + ([overrides] if overrides else [])
    remappings = [(topic, value(argument)) for topic, argument in REMAPPED_TOPICS.items()
                  if value(argument) and value(argument) != topic]
    return [Node(package='dsr_ros', executable='dsr_node', name='dsr_node',
                 namespace=value('namespace'), output='screen', parameters=parameters,
                 remappings=remappings, ros_arguments=['--log-level', value('log_level')])]


def generate_launch_description():
    """Declare the arguments and the dsr_node action."""
    default_params = os.path.join(get_package_share_directory('dsr_ros'), 'config', 'dsr.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='YAML file with the dsr_node parameters (dsr_node: ros__parameters:).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node; its relative topics resolve inside it.'),
        DeclareLaunchArgument(
            'depth_topic', default_value='depth/image_raw',
            description='Input depth image (16UC1 mm or 32FC1 m), e.g. '
                        '/camera/camera/depth/image_rect_raw.'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='depth/camera_info',
            description='CameraInfo of the input depth image.'),
        DeclareLaunchArgument(
            'output_topic', default_value='depth_sr/image_raw',
            description='Super-resolved depth image; its CameraInfo (and points) are '
                        'published beside it, e.g. /cam/sr/image_raw -> /cam/sr/camera_info.'),
        DeclareLaunchArgument(
            'weights_path', default_value='',
            description='DSRNet checkpoint; empty keeps params_file (whose empty default means '
                        'the model shipped with the package).'),
        DeclareLaunchArgument(
            'device', default_value='',
            description='auto, cpu, cuda or cuda:N; empty keeps params_file.'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Logging level of the node: debug, info, warn, error or fatal.'),
        OpaqueFunction(function=_launch_node),
    ])
