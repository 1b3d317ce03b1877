"""Offline training of DSRNet by cross-task knowledge transfer (Sun et al., CVPR 2021).

Imports ``dsr_ros`` for the network and checkpoint format; ``dsr_ros`` never imports this.
"""
