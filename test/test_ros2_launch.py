"""The real ``ros2 launch``: every launch command of README's Launch block, run as written.

The package is built with colcon and sourced (``. install/setup.sh``) like a user's workspace;
``ros2`` comes from this venv (the launch wheels of ``../shared/ros2_launch_wheels``, installed
by ``make setup``; the venv is put on PATH and AMENT_PREFIX_PATH), standing in for
``source /opt/ros/<distro>/setup.bash``. Each command is
started in its own process group, checked over DDS (a 40x30 depth frame in, the x4 frame and
its scaled camera_info out on the topics the command's arguments imply), stopped like Ctrl-C
(SIGINT to the group), and must exit with status 0 leaving no process behind.

Skipped, with the reason, where the wheels are absent (a user's fresh clone).
"""

from __future__ import annotations

import itertools
import os
import posixpath
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import yaml
from conftest import (REPO, camera_info_msg, header, image_msg, make_depth,
                      publish_until_answered, wait_until, write_checkpoint)

WHEELS = REPO.parent / 'shared' / 'ros2_launch_wheels'
BIN = Path(sys.executable).parent
README = REPO / 'README.md'
MARKER = '<!-- test/test_ros2_launch.py'
HEIGHT, WIDTH, SCALE = 30, 40, 4
ARGUMENTS = ('params_file', 'namespace', 'depth_topic', 'camera_info_topic', 'output_topic',
             'weights_path', 'device', 'log_level')

pytestmark = [
    pytest.mark.skipif(not WHEELS.is_dir(), reason=f'{WHEELS} is absent (a fresh clone): the '
                       'real ros2 launch is not installable from PyPI; test_launch.py covers the '
                       'launch file without it'),
    pytest.mark.skipif(not (BIN / 'ros2').exists(), reason=f'ros2 is not installed in {BIN} '
                       '(make setup installs it from ../shared/ros2_launch_wheels)'),
]
_stamps = itertools.count(5000)


def readme_commands() -> List[str]:
    """The shell lines of the README block after MARKER (continuations joined, comments
    dropped)."""
    text = README.read_text()
    start = text.index('```bash', text.index(MARKER)) + len('```bash')
    block = text[start:text.index('```', start)].replace('\\\n', ' ')
    return [' '.join(line.split()) for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def launch_commands() -> List[str]:
    return [line for line in readme_commands()
            if line.startswith('ros2 launch') and '--show-args' not in line]


@pytest.fixture(scope='module')
def workspace(colcon_workspace, tmp_path_factory):
    """The sourced workspace, with HOME holding the model README names, after README's other
    lines (the ``cp`` of the parameter file) ran; the copied file is then edited (32FC1 output)
    so that its use shows in the output."""
    home = tmp_path_factory.mktemp('home')
    write_checkpoint(home / 'models' / 'dsrnet_x4.pt')
    # What `source /opt/ros/<distro>/setup.bash` gives: ros2 on PATH, the ROS prefix indexed.
    env = dict(os.environ, HOME=str(home), PATH=f'{BIN}{os.pathsep}{os.environ["PATH"]}',
               AMENT_PREFIX_PATH=sys.prefix)
    for line in readme_commands():
        if not line.startswith('ros2 '):
            result = subprocess.run(['bash', '-c', f'. install/setup.sh && {line}'],
                                    cwd=colcon_workspace, env=env, capture_output=True,
                                    text=True, timeout=60)
            assert result.returncode == 0, (line, result.stderr)
    params = colcon_workspace / 'my_dsr.yaml'
    config = yaml.safe_load(params.read_text())
    next(iter(config.values()))['ros__parameters']['output_encoding'] = '32FC1'
    params.write_text(yaml.safe_dump(config))
    return colcon_workspace, env


def test_readme_block_has_the_commands_the_issue_names():
    text = ' '.join(readme_commands())
    for fragment in ('depth_topic:=', 'camera_info_topic:=', 'namespace:=camera',
                     '--show-args', 'params_file:=', 'weights_path:=', 'dsr.launch.xml'):
        assert fragment in text, fragment


def test_show_args_lists_every_argument(workspace):
    root, env = workspace
    line, = [line for line in readme_commands() if '--show-args' in line]
    result = subprocess.run(['bash', '-c', f'. install/setup.sh && {line}'], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ARGUMENTS:
        assert f"'{name}':" in result.stdout, (name, result.stdout)


def expected_topics(command: str) -> Dict[str, str]:
    """Input and output topics implied by a command's ``name:=value`` arguments."""
    args = dict(word.split(':=', 1) for word in shlex.split(command) if ':=' in word)
    namespace = args.get('namespace', '').strip('/')

    def resolve(name: str) -> str:
        return name if name.startswith('/') else posixpath.join('/', namespace, name)

    out_image = resolve(args.get('output_topic', 'depth_sr/image_raw'))
    return {'in_image': resolve(args.get('depth_topic', 'depth/image_raw')),
            'in_info': resolve(args.get('camera_info_topic', 'depth/camera_info')),
            'out_image': out_image,
            'out_info': posixpath.join(posixpath.dirname(out_image), 'camera_info'),
            'encoding': '32FC1' if 'params_file:=my_dsr.yaml' in command else '16UC1'}


def _descendants(pid: int) -> list:
    import psutil
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize('command', launch_commands())
def test_readme_launch_command(workspace, ros_probe, command, tmp_path):
    from sensor_msgs.msg import CameraInfo, Image
    psutil = pytest.importorskip('psutil')
    root, env = workspace
    topics = expected_topics(command)
    log = open(tmp_path / 'launch.log', 'wb')
    process = subprocess.Popen(['bash', '-c', f'. install/setup.sh && {command}'], cwd=root,
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    children = []
    try:
        image_pub = ros_probe.publisher(Image, topics['in_image'])
        info_pub = ros_probe.publisher(CameraInfo, topics['in_info'])
        images = ros_probe.subscribe(Image, topics['out_image'])
        infos = ros_probe.subscribe(CameraInfo, topics['out_info'])
        wait_until(lambda: (image_pub.get_subscription_count()
                            and images.subscription.get_publisher_count()
                            and infos.subscription.get_publisher_count())
                   or process.poll() is not None, what=f'the launched node for {command!r}')
        assert process.poll() is None, (tmp_path / 'launch.log').read_text()
        children = _descendants(process.pid)
        assert any('dsr_node' in ' '.join(child.cmdline()) for child in children), children
        msg_header = header(next(_stamps))
        image = image_msg(make_depth('16UC1', HEIGHT, WIDTH), msg_header)
        info = camera_info_msg(msg_header, WIDTH, HEIGHT)
        publish_until_answered(image_pub, image, info_pub, info, [images, infos],
                               f'SR image and camera_info for {command!r}')
        out, out_info = images.with_stamp(msg_header.stamp), infos.with_stamp(msg_header.stamp)
        assert (out.height, out.width) == (HEIGHT * SCALE, WIDTH * SCALE)
        assert out.encoding == topics['encoding']
        assert (out_info.height, out_info.width) == (HEIGHT * SCALE, WIDTH * SCALE)
        np.testing.assert_allclose(out_info.k[0], SCALE * info.k[0])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait(10)
        log.close()
    text = (tmp_path / 'launch.log').read_text(errors='replace')
    assert code == 0, text[-3000:]
    left = [child for child in children if child.is_running()
            and child.status() != psutil.STATUS_ZOMBIE]
    assert not left, (left, text[-2000:])
    assert 'Traceback' not in text, text[-3000:]


def test_ctrl_c_under_ros2_launch_mid_frame_stops_the_node_within_2_s(
        workspace, ros_probe, tmp_path):
    """Issue 11 under the real launch: Ctrl-C while a 640x480 frame is being super-resolved."""
    from sensor_msgs.msg import Image
    psutil = pytest.importorskip('psutil')
    from dsr_ros.scene import sensor_frame_mm
    from dsr_ros.weights import shipped_weights
    root, env = workspace
    namespace = f'stop_{next(_stamps)}'
    command = (f'ros2 launch dsr_ros dsr.launch.py namespace:={namespace} device:=cpu '
               f'weights_path:={shipped_weights("lite", 4)}')
    log = open(tmp_path / 'launch.log', 'wb')
    process = subprocess.Popen(['bash', '-c', f'. install/setup.sh && {command}'], cwd=root,
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        publisher = ros_probe.publisher(Image, f'/{namespace}/depth/image_raw', reliable=True,
                                        depth=1)
        wait_until(lambda: publisher.get_subscription_count() or process.poll() is not None,
                   what='the launched node')
        node = [c for c in _descendants(process.pid) if 'dsr_node' in ' '.join(c.cmdline())]
        assert node, (tmp_path / 'launch.log').read_text()
        matched = f'subscribing to /{namespace}/depth/image_raw reliable'.encode()
        wait_until(lambda: matched in (tmp_path / 'launch.log').read_bytes(),
                   what='input_reliability auto to match the reliable publisher')
        publisher.publish(image_msg(sensor_frame_mm(640, 480, seed=3), header(next(_stamps))))
        import time
        time.sleep(1.0)  # mid-frame: the lite model takes 2-3 s for 640x480 on this CPU
        start = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        psutil.wait_procs(node, timeout=10)
        node_exit_s = time.monotonic() - start
        code = process.wait(20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()
    text = (tmp_path / 'launch.log').read_text(errors='replace')
    assert code == 0, text[-3000:]
    assert node_exit_s < 2.0, (node_exit_s, text[-2000:])
    assert 'terminate called' not in text and 'Traceback' not in text, text[-3000:]
