"""launch/dsr.launch.py without ROS 2 launch (not installable from PyPI) and, if present, with it.

1. Static checks on the parsed file: every argument has a description, every LaunchConfiguration
   names a declared argument, the package/executable/config it names exist and are installed.
2. The file executed against recording doubles of the few launch APIs it uses; the Node action it
   builds is turned into the command line launch_ros would run, and that node is started and
   must answer on the remapped topics.
3. The same with the real launch_ros, skipped with the reason where it is not installed.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import (REPO, NodeProcess, camera_info_msg, header, image_msg, make_depth,
                      publish_until_answered, unique_name, wait_until)

from dsr_ros.ros.ros_args import node_command

LAUNCH_FILE = REPO / 'launch' / 'dsr.launch.py'
EXPECTED_ARGUMENTS = {'params_file', 'namespace', 'depth_topic', 'camera_info_topic',
                      'output_topic', 'weights_path', 'device', 'log_level'}


def _calls(tree: ast.AST, name: str):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def _keywords(call: ast.Call) -> dict:
    return {kw.arg: kw.value for kw in call.keywords}


@pytest.fixture(scope='module')
def tree() -> ast.AST:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _module_constant(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f'{name} not found in the launch file')


def test_every_argument_is_declared_with_a_description(tree):
    declared = {}
    for call in _calls(tree, 'DeclareLaunchArgument'):
        name = ast.literal_eval(call.args[0])
        keywords = _keywords(call)
        assert 'description' in keywords, f'{name} has no description'
        assert len(ast.literal_eval(keywords['description'])) > 15, name
        assert 'default_value' in keywords, name
        declared[name] = keywords
    assert set(declared) == EXPECTED_ARGUMENTS
    # Every argument the node action reads is declared (and every declared one is read).
    read = {call.args[0].value for call in _calls(tree, 'value')
            if isinstance(call.args[0], ast.Constant)}
    read |= set(_module_constant(tree, 'REMAPPED_TOPICS').values())
    read |= set(_module_constant(tree, 'OVERRIDABLE'))
    assert read == set(declared)


def test_node_package_executable_and_config_exist(tree):
    node_call, = _calls(tree, 'Node')
    kwargs = {key: ast.literal_eval(value) for key, value in _keywords(node_call).items()
              if isinstance(value, ast.Constant)}
    assert kwargs['package'] == 'dsr_ros'
    assert kwargs['executable'] == 'dsr_node' and kwargs['name'] == 'dsr_node'
    setup_text = (REPO / 'setup.py').read_text()
    assert "PACKAGE = 'dsr_ros'" in setup_text
    assert "f'dsr_node = {PACKAGE}.ros.node:main'" in setup_text
    from dsr_ros.ros import node
    assert callable(node.main)
    join, = [call for call in _calls(tree, 'join')
             if any(isinstance(arg, ast.Constant) and arg.value == 'dsr.yaml'
                    for arg in call.args)]
    assert [ast.literal_eval(arg) for arg in join.args[1:]] == ['config', 'dsr.yaml']
    assert (REPO / 'config' / 'dsr.yaml').is_file()
    assert "glob('launch/*.launch.py')" in setup_text and "glob('config/*.yaml')" in setup_text
    assert str(LAUNCH_FILE.relative_to(REPO)) in glob.glob('launch/*.launch.py', root_dir=REPO)


# ---------------------------------------------------------------------- recording doubles
class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


def _load_with_recording_doubles(monkeypatch, share: Path):
    """Execute the launch file against minimal recording versions of the launch APIs."""
    def module(name, **attributes):
        fake = types.ModuleType(name)
        fake.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, fake)
        return fake

    module('launch', LaunchDescription=type('LaunchDescription', (_Recorded,), {}))
    module('launch.actions',
           DeclareLaunchArgument=type('DeclareLaunchArgument', (_Recorded,), {}),
           OpaqueFunction=type('OpaqueFunction', (_Recorded,), {}))
    module('launch.substitutions', LaunchConfiguration=_LaunchConfiguration)
    module('launch_ros')
    module('launch_ros.actions', Node=type('Node', (_Recorded,), {}))
    module('ament_index_python')
    module('ament_index_python.packages',
           get_package_share_directory=lambda package: str(share / package))
    spec = importlib.util.spec_from_file_location('dsr_launch_under_test', LAUNCH_FILE)
    launch_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_module)
    return launch_module


def _node_action(launch_module, **arguments):
    description = launch_module.generate_launch_description()
    entities = description.args[0]
    values = {entity.args[0]: entity.kwargs['default_value'] for entity in entities
              if type(entity).__name__ == 'DeclareLaunchArgument'}
    values.update(arguments)
    context = types.SimpleNamespace(launch_configurations=values)
    opaque, = [entity for entity in entities if type(entity).__name__ == 'OpaqueFunction']
    node, = opaque.kwargs['function'](context)
    return node.kwargs


def _launch_ros_command(node: dict) -> list:
    """The argv launch_ros builds for a Node (dict parameters go through a temporary YAML file
    there; ``-p`` is the equivalent)."""
    params_file, *overrides = node['parameters']
    ros_arguments = node['ros_arguments']
    return node_command([sys.executable, '-m', 'dsr_ros.ros.node'], name=node['name'],
                        namespace=node['namespace'], params_file=params_file,
                        parameters=overrides[0] if overrides else None,
                        remaps=dict(node['remappings']),
                        log_level=ros_arguments[ros_arguments.index('--log-level') + 1])


def test_defaults_keep_the_params_file_and_topics(monkeypatch, tmp_path):
    launch_module = _load_with_recording_doubles(monkeypatch, tmp_path / 'share')
    node = _node_action(launch_module)
    assert node['package'] == 'dsr_ros' and node['executable'] == 'dsr_node'
    assert node['parameters'] == [str(tmp_path / 'share' / 'dsr_ros' / 'config' / 'dsr.yaml')]
    assert node['remappings'] == [] and node['namespace'] == ''
    assert node['ros_arguments'] == ['--log-level', 'info']


def test_launched_command_line_runs_the_node_on_the_remapped_topics(
        monkeypatch, tmp_path, tiny_checkpoint, ros_probe):
    from sensor_msgs.msg import CameraInfo, Image
    launch_module = _load_with_recording_doubles(monkeypatch, tmp_path / 'share')
    namespace, camera = unique_name('dsr_launch'), '/' + unique_name('cam')
    node = _node_action(launch_module, params_file=str(REPO / 'config' / 'dsr.yaml'),
                        namespace=namespace, depth_topic=f'{camera}/depth',
                        camera_info_topic=f'{camera}/info', output_topic=f'{camera}/depth_sr',
                        weights_path=str(tiny_checkpoint), device='cpu', log_level='debug')
    assert node['parameters'][1] == {'weights_path': str(tiny_checkpoint), 'device': 'cpu'}
    process = NodeProcess(_launch_ros_command(node), tmp_path / 'node.log')
    try:
        image_pub = ros_probe.publisher(Image, f'{camera}/depth')
        info_pub = ros_probe.publisher(CameraInfo, f'{camera}/info')
        outputs = ros_probe.subscribe(Image, f'{camera}/depth_sr')
        # output_topic remaps the image; its camera_info follows it (image_transport layout).
        infos = ros_probe.subscribe(CameraInfo, f'{camera}/camera_info')
        wait_until(lambda: (image_pub.get_subscription_count()
                            and info_pub.get_subscription_count()
                            and outputs.subscription.get_publisher_count())
                   or not process.alive(), what='the launched node on the remapped topics')
        assert process.alive(), process.log()
        depth = make_depth('16UC1')
        msg_header = header(7)
        image, info = image_msg(depth, msg_header), camera_info_msg(msg_header, 24, 16)
        publish_until_answered(image_pub, image, info_pub, info, [outputs, infos],
                               'the SR image and camera_info')
        out = outputs.with_stamp(msg_header.stamp)
        assert (out.height, out.width) == (64, 96)
        assert np.frombuffer(bytes(out.data), '<u2').size == 64 * 96
        assert '[DEBUG]' in process.log()  # log_level reached the node
    finally:
        assert process.stop() == 0, process.log()[-2000:]


#: Importing ROS 2 launch reconfigures the logging module of the process (later caplog-based
#: tests would see nothing), so the real launch_ros is only ever imported in a child process.
_REAL_LAUNCH_CHECK = """
import importlib.util, sys
import ament_index_python.packages as index
import launch, launch_ros.actions
assert hasattr(launch, 'LaunchDescription') and hasattr(launch_ros.actions, 'Node')
if len(sys.argv) > 1:
    index.get_package_share_directory = lambda package: sys.argv[2]
    spec = importlib.util.spec_from_file_location('dsr_launch_real', sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = launch.LaunchContext()
    actions = []
    for entity in module.generate_launch_description().entities:
        if isinstance(entity, launch.actions.DeclareLaunchArgument):
            entity.visit(context)
        elif isinstance(entity, launch.actions.OpaqueFunction):
            actions.extend(entity.execute(context) or [])
    node, = actions
    assert isinstance(node, launch_ros.actions.Node)
    print(node.node_package, node.node_executable)
"""


def _real_launch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', _REAL_LAUNCH_CHECK, *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(_real_launch().returncode != 0,
                    reason='ROS 2 launch / launch_ros are not installed (not on PyPI; PyPI '
                           "'launch' is an unrelated project): the recording-double tests "
                           'above cover the launch file here')
def test_with_real_launch_ros():
    result = _real_launch(str(LAUNCH_FILE), str(REPO))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['dsr_ros', 'dsr_node']
