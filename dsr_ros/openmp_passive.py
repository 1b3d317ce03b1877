"""Imported by the node before torch: idle OpenMP threads sleep instead of spinning.

GNU OpenMP (PyTorch's CPU wheels) lets idle pool threads spin before they sleep and reads
``OMP_WAIT_POLICY`` once, when torch loads libgomp, so this must run before ``import torch``.
In the node, the spinning threads of the inference pool fight the executor and DDS threads
(and on a robot, the drivers) for the cores, and every parallel region waits for a thread that
was descheduled. Measured with ``python -m benchmarks`` (x4, 160x120 -> 640x480, fp32, 2-core
CPU under load, fresh node processes in one run): the tiny model's node output went from 2.5 to
12.9 frames/s (5.2x), the lite model's 1.12x. A value the user set is kept;
``DSR_ROS_OMP_PASSIVE=0`` leaves libgomp's default (spin, then sleep).
"""

import os

if os.environ.get('DSR_ROS_OMP_PASSIVE', '1') != '0':
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
