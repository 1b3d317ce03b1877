"""A bag as a robot's driver records it, written with plain ``rosbags`` (not the project's writer).

``/camera/depth/image_raw`` (16UC1 mm, the demo's procedural scene sequence),
``/camera/depth/camera_info``, optionally ``/camera/color/image_raw`` (bgr8) with its
``camera_info`` stamped a few ms after the depth, and an unrelated ``/imu/data`` at a higher
rate. Used by the fine-tune tests, so what they read is what a user's bag holds. With
``lr_topic`` the same scene also goes out at 1/4 the size (the scene's sensor-like LR frame, 16UC1
with holes, and its camera_info), stamped ``lr_offset`` s after the depth: a bag with real
LR/HR pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

DEPTH = '/camera/depth/image_raw'
DEPTH_INFO = '/camera/depth/camera_info'
COLOR = '/camera/color/image_raw'
COLOR_INFO = '/camera/color/camera_info'
IMU = '/imu/data'
DEPTH_LR = '/camera/depth_lr/image_raw'


def write_driver_bag(path: Path, storage: str = 'sqlite3', rgb: bool = True, frames: int = 30,
                     lr_size: tuple = (40, 30), rate: float = 10.0, rgb_offset: float = 0.007,
                     depth_encoding: str = '16UC1', seed: int = 0,
                     scene_seed: Optional[int] = None, lr_topic: Optional[str] = None,
                     lr_offset: float = 0.0) -> Path:
    """Write the bag; depth is the HR truth of :class:`dsr_ros.scene.DepthScene` in mm."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from dsr_ros.scene import DepthScene, SceneConfig
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    scene = DepthScene(SceneConfig(lr_width=lr_size[0], lr_height=lr_size[1], scale=4,
                                   rate_hz=rate, seed=seed if scene_seed is None else scene_seed))
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    Image, Info = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'

    def header(stamp: float, frame: str):
        sec = int(stamp)
        nano = int(round((stamp - sec) * 1e9))
        return (types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nano), frame_id=frame),
            sec * 1_000_000_000 + nano)

    def info(hdr, width: int, height: int):
        k = np.array([width * 0.9, 0, width / 2, 0, width * 0.9, height / 2, 0, 0, 1], float)
        p = np.array([k[0], 0, k[2], 0, 0, k[4], k[5], 0, 0, 0, 1, 0], float)
        roi = types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return types[Info](header=hdr, height=height, width=width, distortion_model='plumb_bob',
                           d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0,
                           binning_y=0, roi=roi)

    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conns = {DEPTH: writer.add_connection(DEPTH, Image, typestore=store),
                 DEPTH_INFO: writer.add_connection(DEPTH_INFO, Info, typestore=store),
                 IMU: writer.add_connection(IMU, 'sensor_msgs/msg/Imu', typestore=store)}
        if lr_topic:
            lr_info_topic = lr_topic.rsplit('/', 1)[0] + '/camera_info'
            conns[lr_topic] = writer.add_connection(lr_topic, Image, typestore=store)
            conns[lr_info_topic] = writer.add_connection(lr_info_topic, Info, typestore=store)
        if rgb:
            conns[COLOR] = writer.add_connection(COLOR, Image, typestore=store)
            conns[COLOR_INFO] = writer.add_connection(COLOR_INFO, Info, typestore=store)
        for index in range(frames):
            stamp = 1700000000.0 + index / rate
            frame = scene.frame(index)
            hr = frame.hr_metres
            height, width = hr.shape
            hdr, ns = header(stamp, 'camera_depth_optical_frame')
            if depth_encoding == '16UC1':
                data = np.clip(np.rint(hr * 1000), 0, 65535).astype('<u2')
                step = width * 2
            else:  # a colour encoding on the depth topic (the wrong-topic case)
                data = np.repeat((hr * 40).astype(np.uint8)[..., None], 3, axis=2)
                step = width * 3
            msg = types[Image](header=hdr, height=height, width=width, encoding=depth_encoding,
                               is_bigendian=0, step=step,
                               data=np.frombuffer(data.tobytes(), np.uint8))
            writer.write(conns[DEPTH], ns, store.serialize_cdr(msg, Image))
            writer.write(conns[DEPTH_INFO], ns, store.serialize_cdr(info(hdr, width, height),
                                                                    Info))
            if lr_topic:
                lhdr, lns = header(stamp + lr_offset, 'camera_depth_optical_frame')
                lr = np.ascontiguousarray(frame.lr, dtype='<u2')  # the scene's 16UC1 mm
                msg = types[Image](header=lhdr, height=lr.shape[0], width=lr.shape[1],
                                   encoding='16UC1', is_bigendian=0, step=lr.shape[1] * 2,
                                   data=np.frombuffer(lr.tobytes(), np.uint8))
                writer.write(conns[lr_topic], lns, store.serialize_cdr(msg, Image))
                writer.write(conns[lr_info_topic], lns, store.serialize_cdr(
                    info(lhdr, lr.shape[1], lr.shape[0]), Info))
            if rgb:
                chdr, cns = header(stamp + rgb_offset, 'camera_color_optical_frame')
                shade = (255 * (hr - hr.min()) / max(float(np.ptp(hr)), 1e-6)).astype(np.uint8)
                bgr = np.stack([shade, 255 - shade, shade // 2], axis=2)
                msg = types[Image](header=chdr, height=height, width=width, encoding='bgr8',
                                   is_bigendian=0, step=width * 3,
                                   data=np.frombuffer(bgr.tobytes(), np.uint8))
                writer.write(conns[COLOR], cns, store.serialize_cdr(msg, Image))
                writer.write(conns[COLOR_INFO], cns,
                             store.serialize_cdr(info(chdr, width, height), Info))
            for tick in range(3):  # an IMU at 3x the camera rate, unrelated to the images
                ihdr, ins = header(stamp + tick / (3 * rate), 'imu_link')
                imu = types['sensor_msgs/msg/Imu'](
                    header=ihdr, orientation=types['geometry_msgs/msg/Quaternion'](
                        x=0.0, y=0.0, z=0.0, w=1.0), orientation_covariance=np.zeros(9),
                    angular_velocity=types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
                    angular_velocity_covariance=np.zeros(9),
                    linear_acceleration=types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0,
                                                                           z=9.81),
                    linear_acceleration_covariance=np.zeros(9))
                writer.write(conns[IMU], ins, store.serialize_cdr(imu, 'sensor_msgs/msg/Imu'))
    return path
